"""People's names that spaCy's small NER model misses or mistakes for places, found by what comes
before them: "Thanks, Grace", "It's Giovanni again", "my husband Jakub Davies", "Regards,\\nTunde Ali".

Support messages are short and informal, which is where the small model is weakest, and names are the
most common PII in them. The cues are few and specific, and a candidate must look like a name to spaCy's
tagger (a capitalised proper noun that NER did not call a date, an organisation or a product), so
"This is urgent", "It's Tuesday" and "Hi team" are left alone.
"""

from __future__ import annotations

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.tokens import Doc, Token

# Token sequences (lower case, as spaCy splits them: "I'm" is "i" + "'m") after which a capitalised
# proper noun is a person. Punctuation and line breaks between cue and name are skipped.
_CUES: tuple[tuple[str, ...], ...] = (
    ("i", "'m"),
    ("i", "\u2019m"),
    ("i", "am"),
    ("this", "is"),
    ("it", "'s"),
    ("it", "\u2019s"),
    ("it", "is"),
    ("name", "is"),
    ("name", "'s"),
    ("name",),
    ("called",),
    ("hi",),
    ("hello",),
    ("hey",),
    ("dear",),
    ("thanks",),
    ("thank", "you"),
    ("cheers",),
    ("regards",),
    ("wishes",),
    ("sincerely",),
    ("husband",),
    ("wife",),
    ("partner",),
    ("son",),
    ("daughter",),
    ("father",),
    ("mother",),
    ("dad",),
    ("mum",),
    ("mom",),
    ("brother",),
    ("sister",),
    ("friend",),
    ("colleague",),
    ("technician",),
    ("engineer",),
    ("agent",),
    ("holder",),
    ("beneficiary",),
    ("contact",),
    ("under",),
    ("landlord",),
    ("tenant",),
)
_LONGEST_CUE = max(len(cue) for cue in _CUES)

# NER labels that rule a token out. PERSON, the place labels and ORG are allowed: after a cue, the small
# model calls names organisations ("my name is Sofia Davies") and places ("Thanks, Charlotte") often.
_NOT_A_NAME_LABELS = frozenset(
    {"DATE", "TIME", "NORP", "PRODUCT", "EVENT", "LAW", "LANGUAGE", "WORK_OF_ART"}
    | {"MONEY", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT"}
)
# A name on its own after one of these ends a message the way a signature does ("... - Jakub").
_SIGN_OFF_MARKS = frozenset({"-", "\u2013", "\u2014", "~"})
_NOT_NAMES = frozenset(
    {
        *("team", "support", "sir", "madam", "all", "there", "everyone", "everybody", "customer"),
        *("customers", "service", "services", "again", "guys", "folks", "mate", "admin", "billing"),
        *("sales", "helpdesk", "help", "please", "ok", "okay", "yes", "no", "hi", "hello", "thanks"),
        *("thank", "cheers", "regards", "urgent", "asap"),
        *("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        *("january", "february", "march", "april", "may", "june", "july", "august", "september"),
        *("october", "november", "december"),
    }
)
_NAME_PUNCTUATION = frozenset("'\u2019-")
_MAX_NAME_TOKENS = 3


class CuedNameRecognizer(LocalRecognizer):
    # Above NER's flat 0.85: a cue is better evidence of a person than the small model's label, so
    # where the two disagree about the same words, the placeholder says <PERSON>.
    SCORE = 0.9

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name=type(self).__name__)

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if nlp_artifacts is None or not isinstance(nlp_artifacts.tokens, Doc):
            return []
        doc = nlp_artifacts.tokens
        results = []
        i = 0
        while i < len(doc):
            if not _looks_like_name(doc[i], tagged_proper_noun=False):
                i += 1
                continue
            last = i
            while (
                last + 1 < len(doc)
                and last + 1 - i < _MAX_NAME_TOKENS
                and _looks_like_name(doc[last + 1], tagged_proper_noun=False)
            ):
                last += 1
            proper = all(_looks_like_name(token, tagged_proper_noun=True) for token in doc[i : last + 1])
            if (proper and _follows_cue(doc, i)) or _is_signature(doc, i, last, proper=proper):
                results.append(
                    RecognizerResult(
                        entity_type="PERSON",
                        start=doc[i].idx,
                        end=doc[last].idx + len(doc[last].text),
                        score=self.SCORE,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
            i = last + 1
        return results


def _looks_like_name(token: Token, *, tagged_proper_noun: bool) -> bool:
    word = token.text
    return (
        len(word) > 1
        and word[0].isupper()
        and word[1:] != word[1:].upper()  # not an acronym: "VPN", "IBAN"
        and all(ch.isalpha() or ch in _NAME_PUNCTUATION for ch in word)
        and (token.pos_ == "PROPN" or not tagged_proper_noun)
        and token.ent_type_ not in _NOT_A_NAME_LABELS
        and token.lower_ not in _NOT_NAMES
    )


def _is_separator(token: Token) -> bool:
    return token.is_punct or token.is_space


def _follows_cue(doc: Doc, start: int) -> bool:
    words: list[str] = []
    position = start - 1
    while position >= 0 and _is_separator(doc[position]):
        position -= 1
    while position >= 0 and len(words) < _LONGEST_CUE and not _is_separator(doc[position]):
        words.insert(0, doc[position].lower_)
        position -= 1
    return any(tuple(words[-len(cue) :]) == cue for cue in _CUES if len(cue) <= len(words))


def _is_signature(doc: Doc, start: int, last: int, *, proper: bool) -> bool:
    """Capitalised words alone at the very end of a message: after a dash or on their own line
    ("... - Jakub", "Regards,\nTunde Ali") whatever the tagger says, after a full stop only when tagged
    as proper nouns ("... the callback. Tunde"; not "... Please help. Urgent")."""
    if any(not _is_separator(token) for token in doc[last + 1 :]):
        return False
    if start == 0:
        return proper
    before = doc[start - 1]
    if before.text in _SIGN_OFF_MARKS or "\n" in before.text or "\n" in before.whitespace_:
        return True
    return proper and _is_separator(before)
