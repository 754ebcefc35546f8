"""Follow-up questions: "And in Zone 2?" after a question about Zone 3 is searched with its subject.

`quote` uses a deterministic carry-over: when the new message reads as a follow-up (it opens with "and",
"what about"… or is a few words leaning on the last turn), the previous question is searched again with
the new message's counted things put in place of the old ones of the same kind ("Zone 3" → "Zone 2")
and the rest of the new words added. `compose` asks the model to rewrite the question as a standalone
one; a rewrite naming a counted thing that neither message names is refused, and the carry-over is used.
"""

from __future__ import annotations

import re

from apps.conversations.answering.terms import content_terms, qualified_things

_CONNECTIVE = re.compile(
    r"^\s*(?:and|but|or|also|so|what about|how about|what if|and what about|and if|in that case|then)\b",
    re.IGNORECASE,
)
_LEANING = re.compile(r"\b(?:it|that|this|those|these|them|there|one|same)\b", re.IGNORECASE)
SHORT_TERMS = 3
REWRITE_PROMPT = (
    "Rewrite the customer's last message as one standalone question, using the earlier question for "
    "what it leaves out. Keep every number and name of the last message. Reply with the question only."
)


def is_followup(question: str) -> bool:
    terms = content_terms(question)
    if _CONNECTIVE.match(question):
        return True
    return len(terms) <= SHORT_TERMS and (bool(_LEANING.search(question)) or len(question.split()) <= 5)


def carry_over(question: str, previous: str | None) -> str:
    """The text to search with: `question` itself, or the previous question carried over to it."""
    if not previous or not is_followup(question):
        return question
    asked = qualified_things(question)
    carried = previous
    replaced_kinds: set[str] = set()
    for kind, value in asked:
        for old_kind, old_value in qualified_things(previous):
            if old_kind == kind and old_value != value:
                carried = _replace_thing(carried, kind, old_value, value)
                replaced_kinds.add(kind)
    old_terms = set(content_terms(carried))
    extra = [
        w
        for w in re.findall(r"[\w€£$.'-]+", question)
        if content_terms(w) and not set(content_terms(w)) <= old_terms
    ]
    extra = [w for w in extra if not any(w.lower() == v for _, v in asked if _ in replaced_kinds)]
    tail = " ".join(extra)
    return f"{carried.strip()} {tail}".strip() if tail and not replaced_kinds else carried.strip()


def _replace_thing(text: str, kind: str, old: str, new: str) -> str:
    pattern = re.compile(
        rf"(\b{re.escape(kind)}\w*\s+){re.escape(old)}\b|\b{re.escape(old)}(\s*-?\s*{re.escape(kind)})",
        re.IGNORECASE,
    )

    def swap(m: re.Match[str]) -> str:
        return f"{m.group(1)}{new}" if m.group(1) is not None else f"{new}{m.group(2)}"

    return pattern.sub(swap, text)


def rewrite_acceptable(rewrite: str, question: str, previous: str) -> bool:
    """A model's standalone rewrite may only name counted things the two messages name, and must keep
    the last message's."""
    rewrite = rewrite.strip()
    if not rewrite or len(rewrite) > 300 or "\n" in rewrite:
        return False
    named = qualified_things(rewrite)
    return qualified_things(question) <= named and named <= qualified_things(question) | qualified_things(
        previous
    )
