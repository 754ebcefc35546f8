"""The check: `support_check` and its rules (see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .clauses import _Seg, _segments
from .evidence import _evidence, _EvSentence, _Passage, _passage
from .names import _Name, _names
from .quantities import _UNIT_WORDS, _compatible, _Qty, _quantities, _rival
from .tokens import _normalise, _Tok, _tokenize
from .vocabulary import (
    _ANTONYMS,
    _GENERIC,
    _NEGATING_PREFIXES,
    _NON_CONTENT,
    _SCOPE_GROUPS,
    _UNIVERSALS,
    _stem,
)

OVERLAP_MIN = 0.6
# A content word found neither in the evidence, the question nor _GENERIC is a new fact ("done in a Nimbus
# store", "faults on our network"); one is tolerated only in a sentence otherwise this well covered.
NOVEL_OVERLAP_MIN = 0.85
MAX_WORDS = 60
# The best evidence sentence holding a quantity must share at least this share of the content words the
# best evidence sentence overall shares with the quantity's phrase, or the quantity was taken from
# somewhere else ("the engineer's missed visit: €65" when €65 is the wiring call-out charge).
_BINDING_MIN = 0.75
_PHRASE_ENDS = frozenset({"and", "or", ";", "but"})


@dataclass(frozen=True)
class SupportVerdict:
    supported: bool
    reasons: tuple[str, ...]


_FILLER_RE = re.compile(
    r"\bhope (?:this|that|it) helps\b|\blet (?:me|us) know\b|\bfeel free\b|\b(?:any|other|further|more) "
    r"questions\b|\b(?:happy|glad|here) to (?:help|assist)\b|\banything else\b|\bthanks? (?:you )?for "
    r"(?:reaching|contacting|getting|your|asking|waiting|your patience)\b|\bsorry for (?:the|any) "
    r"inconvenience\b|\bi understand (?:your|how|that)\b|\bgreat question\b"
    r"|\bhave a (?:great|nice|good|lovely) day\b|\b(?:don't|do not) hesitate\b"
)
_YES_OPENERS = frozenset(
    {"yes", "yeah", "yep", "sure", "certainly", "absolutely", "correct", "indeed", "exactly"}
)
_NO_OPENERS = frozenset({"no", "nope"})
_OPENER_PUNCT = frozenset({",", ".", "!", ":", "-", "\u2013", "\u2014"})


def support_check(sentence: str, evidence: Sequence[str], *, question: str = "") -> SupportVerdict:
    """Check one model-written sentence against the verbatim evidence shown with it (and the question)."""
    ev = _evidence(tuple(p for p in evidence if p and p.strip()))
    asked = _passage(question) if question.strip() else _Passage()
    text = _normalise(sentence.strip())
    toks = _tokenize(text)
    reasons: list[str] = []
    if _FILLER_RE.search(text.lower()):
        reasons.append("filler")
    if sum(1 for t in toks if t.kind not in ("punct", "sym")) > MAX_WORDS:
        reasons.append("too_long")

    body, said_no = toks, False
    if len(toks) > 2 and toks[1].low in _OPENER_PUNCT and toks[0].low in _YES_OPENERS | _NO_OPENERS:
        body, said_no = toks[2:], toks[0].low in _NO_OPENERS
    names, consumed = _names(body, text, ev.lower_words | asked.lower_words)
    qtys = _quantities(body, text, consumed)
    segs = _segments(body, qtys, with_hay=False)  # the sentence's names are found by _names
    in_quantity = {k for q in qtys for k in range(q.first, q.last + 1)}
    # Content words, less the units of its quantities ("years" in "two years"): those are checked whole.
    content = frozenset(
        _stem(t.low)
        for k, t in enumerate(body)
        if t.kind == "word"
        and k not in in_quantity
        and len(t.low) > 1
        and t.low not in _NON_CONTENT
        and not t.low.endswith("n't")
    )
    if len(content) < 2 and not qtys and not names:
        reasons.append("filler")

    unbound: set[_Qty] = set()  # quantities the binding checks leave alone: the customer's, or unknown
    for q in qtys:
        in_evidence = any(_compatible(q, f) for f in ev.qtys)
        in_question = any(_compatible(q, f) for f in asked.qtys)
        if not (in_evidence or in_question):
            reasons.append(f"number:{q.raw}")
        if in_question or not in_evidence:
            unbound.add(q)
    for k, t in enumerate(body):
        unit = _UNIT_WORDS.get(t.low)
        if unit and k not in in_quantity and unit not in ev.units and unit not in asked.units:
            reasons.append(f"number:{t.text}")
    for nm in names:
        if f" {nm.norm} " not in ev.hay and f" {nm.norm} " not in asked.hay:
            reasons.append(f"name:{nm.raw}")
    name_stems = {_stem(t.low) for nm in names for t in body[nm.first : nm.last + 1] if t.kind == "word"}
    if content:
        pool = ev.allstems | asked.allstems
        covered = sum(1 for s in content if s in pool or s in _GENERIC) / len(content)
        if covered < OVERLAP_MIN:
            reasons.append("overlap")
        elif covered < NOVEL_OVERLAP_MIN:  # a name's words were checked with the name
            novel = sorted(content - pool - _GENERIC - name_stems)
            reasons.extend(f"novel:{_word_for(s, body, segs)}" for s in novel)
    first_claim = next((k for k, s in enumerate(segs) if s.stems or s.qtys), -1)
    for k, seg in enumerate(segs):
        if not (seg.stems or seg.qtys):
            continue
        seg_names = [nm for nm in names if seg.lo <= nm.first < seg.hi]
        # "No, it isn't free" / "No, we never charge": the claim carries its own negation already.
        neg = seg.neg or (said_no and k == first_claim and not seg.free_phrase)
        reasons.extend(_polarity_reasons(seg, neg, seg_names, name_stems, body, ev))
        reasons.extend(_binding_reasons(seg, seg_names, unbound, body, name_stems, ev))
    return SupportVerdict(supported=not reasons, reasons=tuple(dict.fromkeys(reasons)))


def _polarity_reasons(
    seg: _Seg, neg: bool, names: Sequence[_Name], name_stems: set[str], body: Sequence[_Tok], ev: _Passage
) -> list[str]:
    """Compare the clause with the evidence clauses it matches best (all of them on a tie). A whole evidence
    sentence competes too when it matches better than each of its clauses: the sentence merged them."""
    plain = seg.stems - name_stems
    numbered = [(f" {nm.norm} ", _sibling_re(nm)) for nm in names if nm.number]

    def score(es: _Seg) -> int:
        if numbered and any(needle not in es.hay and sibling.search(es.hay) for needle, sibling in numbered):
            return 0  # a clause about Zone 1 says nothing about Zone 3
        total = len(plain & es.stems)
        if names:  # a numbered name tells clauses apart ("Zone 2", "Zone 1"); its words were left out
            total += sum(3 if nm.number else 1 for nm in names if f" {nm.norm} " in es.hay)
        if seg.qtys and es.qtys:
            total += 2 * sum(1 for q in seg.qtys if any(_compatible(q, f) for f in es.qtys))
        return total

    best: list[tuple[_Seg, _EvSentence]] = []
    best_score = 0
    for sentence in ev.sentences:
        scored = [(score(es), es) for es in sentence.segs]
        if sentence.whole is not None:
            whole_score = score(sentence.whole)
            if whole_score > max(sc for sc, _ in scored):
                scored.append((whole_score, sentence.whole))
        for sc, es in scored:
            if sc > best_score:
                best, best_score = [(es, sentence)], sc
            elif sc == best_score and sc > 0:
                best.append((es, sentence))
    if not best:
        return ["negation"] if neg else []
    out: list[str] = []
    for es, sentence in best:
        # A named thing the paragraph already denied ("without a Travel Pass") is a condition, not a claim.
        condition = neg and seg.targets and seg.targets <= name_stems & sentence.context_targets
        if neg != es.neg and not condition:
            out.append("negation")
        elif (
            neg
            and seg.targets
            and es.targets
            and not seg.targets & es.targets
            and (seg.targets & es.stems or es.targets & seg.stems)
        ):
            out.append("negation")  # the same words, another one denied
        if (seg.free and not es.free) or (es.all_free and not seg.free and seg.costy):
            out.append("negation")
        for a, b in _ANTONYMS:
            for x, y in ((a, b), (b, a)):
                if x in seg.allstems and y not in seg.allstems and y in es.allstems and x not in es.allstems:
                    out.append(f"antonym:{_word_for(x, body, seg)}")
        for needed, kept in _SCOPE_GROUPS:
            if needed.intersection(es.scope) and not kept.intersection(seg.scope):
                out.append(f"scope:{min(needed.intersection(es.scope))}")
        # Each "always" or "unlimited" needs its own in the evidence: "Unlimited plans can use up to 35 GB"
        # does not say "unlimited plans can use unlimited data".
        out.extend(
            f"scope:{w}"
            for w in sorted(set(seg.scope) & _UNIVERSALS)
            if seg.scope.count(w) > es.scope.count(w)
        )
        for t in seg.stems:
            for prefix in _NEGATING_PREFIXES:
                opposite = t[len(prefix) :] if t.startswith(prefix) and len(t) - len(prefix) >= 5 else None
                if (prefix + t in es.stems or opposite in es.stems) and t not in es.stems:
                    out.append(f"antonym:{_word_for(t, body, seg)}")
    return out


def _word_for(stem: str, body: Sequence[_Tok], within: _Seg | Sequence[_Seg]) -> str:
    segs = [within] if isinstance(within, _Seg) else within
    words = (t.low for seg in segs for t in body[seg.lo : seg.hi] if t.kind == "word")
    return next((w for w in words if _stem(w) == stem), stem)


def _binding_reasons(
    seg: _Seg,
    names: Sequence[_Name],
    unbound: set[_Qty],
    body: Sequence[_Tok],
    name_stems: set[str],
    ev: _Passage,
) -> list[str]:
    out: list[str] = []
    for q in seg.qtys:
        if q in unbound or q.kind in ("weekday", "month", "date", "every"):
            continue
        # What the quantity is said of: the words up to the nearest "and" / "or" on either side (a
        # condition before a comma counts), less the names, which say what the topic is, not which fact.
        lo = next((k + 1 for k in range(q.first - 1, -1, -1) if body[k].low in _PHRASE_ENDS), 0)
        hi = next((k for k in range(q.last + 1, len(body)) if body[k].low in _PHRASE_ENDS), len(body))
        context = {
            _stem(t.low)
            for k, t in enumerate(body[lo:hi], lo)
            if t.kind == "word"
            and not q.first <= k <= q.last  # its own unit ("minute") says nothing of what it belongs to
            and len(t.low) > 1
            and t.low not in _NON_CONTENT
            and not t.low.endswith("n't")
        } - name_stems
        if len(context) >= 2 and ev.sentences:
            best_any = max(len(context & s.stems) for s in ev.sentences)
            best_own = max(
                (len(context & s.stems) for s in ev.sentences if any(_compatible(q, f) for f in s.qtys)),
                default=0,
            )
            if best_own < _BINDING_MIN * best_any:
                out.append(f"binding:{q.raw}")
                continue
        for nm in names:
            if nm.number and f" {nm.norm} " in ev.hay and _bound_to_sibling(q, nm, ev):
                out.append(f"binding:{q.raw}")
                break
    return out


def _bound_to_sibling(q: _Qty, nm: _Name, ev: _Passage) -> bool:
    """Does the evidence give this numbered name another value of q's sort, or q to a sibling name?"""
    needle = f" {nm.norm} "
    holding = [es for es in ev.segs if any(_compatible(q, f) for f in es.qtys)]
    if any(needle in es.hay for es in holding):
        return False
    if any(needle in es.hay and any(_rival(q, f) for f in es.qtys) for es in ev.segs):
        return True
    sibling = _sibling_re(nm)
    return any(sibling.search(es.hay) for es in holding)


@lru_cache(maxsize=512)
def _sibling_re(nm: _Name) -> re.Pattern[str]:
    return re.compile(rf" {re.escape(nm.family)} (?!{re.escape(nm.number)} )\d+ ")
