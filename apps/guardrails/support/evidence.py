"""Evidence (and the question), analysed once per passage: its sentences, clauses, stems, quantities and
names, cached so that checking each sentence of an answer against the same policy costs little."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from .clauses import _Seg, _segments
from .names import _hay
from .quantities import _RATE_ADVERBS, _UNIT_WORDS, _Qty, _quantities
from .splitting import sentences_split
from .tokens import _normalise, _tokenize
from .vocabulary import _base_stem


@dataclass(frozen=True, slots=True)
class _EvSentence:
    stems: frozenset[str]
    qtys: tuple[_Qty, ...]
    segs: tuple[_Seg, ...]
    whole: _Seg | None  # the clauses merged, when there are several
    # What the sentences before it in its passage deny: "If you do not have a Travel Pass, standard rates
    # apply. In Zone 2, calls cost €1.20 per minute." supports "Without a Travel Pass, calls in Zone 2 cost
    # €1.20 per minute".
    context_targets: frozenset[str] = frozenset()


def _merge(segs: Sequence[_Seg]) -> _Seg | None:
    if len(segs) < 2:
        return None
    return _Seg(
        lo=segs[0].lo,
        hi=segs[-1].hi,
        stems=frozenset().union(*(s.stems for s in segs)),
        allstems=frozenset().union(*(s.allstems for s in segs)),
        hay="".join(s.hay for s in segs),
        qtys=tuple(q for s in segs for q in s.qtys),
        neg=any(s.neg for s in segs),
        free=any(s.free for s in segs),
        free_phrase=any(s.free_phrase for s in segs),
        all_free=all(s.free for s in segs if s.costy),
        targets=frozenset().union(*(s.targets for s in segs)),
        costy=any(s.costy for s in segs),
        scope=tuple(w for s in segs for w in s.scope),
    )


@dataclass(frozen=True, slots=True)
class _Passage:
    sentences: tuple[_EvSentence, ...] = ()
    allstems: frozenset[str] = frozenset()
    units: frozenset[str] = frozenset()  # time units it speaks of, with or without a number
    lower_words: frozenset[str] = frozenset()  # stems of the words it writes in lower case
    qtys: tuple[_Qty, ...] = ()
    hay: str = " "
    segs: tuple[_Seg, ...] = field(default=())


@lru_cache(maxsize=1024)
def _passage(text: str) -> _Passage:
    sentences: list[_EvSentence] = []
    allstems: set[str] = set()
    units: set[str] = set()
    lower_words: set[str] = set()
    qtys: list[_Qty] = []
    hays: list[str] = []
    for raw in sentences_split(text):
        norm = _normalise(raw)
        toks = _tokenize(norm)
        sent_qtys = _quantities(toks, norm)
        segs = _segments(toks, sent_qtys)
        stems = frozenset().union(*(s.stems for s in segs))
        before = frozenset().union(*(seg.targets for s in sentences for seg in s.segs))
        sentences.append(_EvSentence(stems, tuple(sent_qtys), tuple(segs), _merge(segs), before))
        allstems.update(*(s.allstems for s in segs))
        lower_words.update(_base_stem(t.low) for t in toks if t.kind == "word" and t.text.islower())
        units.update(_UNIT_WORDS.get(t.low) or _RATE_ADVERBS.get(t.low, "") for t in toks)
        qtys.extend(sent_qtys)
        hays.append(_hay(toks))
    return _Passage(
        sentences=tuple(sentences),
        allstems=frozenset(allstems),
        units=frozenset(units),
        lower_words=frozenset(lower_words),
        qtys=tuple(qtys),
        hay="|".join(hays),
        segs=tuple(seg for s in sentences for seg in s.segs),
    )


@lru_cache(maxsize=256)
def _evidence(passages: tuple[str, ...]) -> _Passage:
    parts = [_passage(p) for p in passages]
    return _Passage(
        sentences=tuple(s for p in parts for s in p.sentences),
        allstems=frozenset().union(*(p.allstems for p in parts)),
        units=frozenset().union(*(p.units for p in parts)),
        lower_words=frozenset().union(*(p.lower_words for p in parts)),
        qtys=tuple(q for p in parts for q in p.qtys),
        hay="|".join(p.hay for p in parts) or " ",
        segs=tuple(s for p in parts for s in p.segs),
    )
