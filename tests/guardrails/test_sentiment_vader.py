"""The desk keeps its own "upset customer" lexicon because it reads support messages better than VADER, the
maintained general-purpose lexicon (docs/adr/0010-maintained-libraries.md). This holds that claim to the
held-out corpus: if VADER, or VADER combined with the lexicon, ever scores a better F1 there, the choice must
be revisited and this test says so."""

from __future__ import annotations

import pytest

from bench.sentiment import HELD_OUT_MOOD, TUNING_MOOD, _prf, lexicon, vader_compound


def _vader_threshold() -> float:
    candidates = [round(-0.05 * i, 2) for i in range(1, 20)]
    return max(candidates, key=lambda t: (_prf(TUNING_MOOD, lambda x: vader_compound(x) <= t)["f1"], t))


def test_the_lexicon_reads_upset_customers_better_than_vader_on_the_held_out_set() -> None:
    threshold = _vader_threshold()

    def vader(text: str) -> bool:
        return vader_compound(text) <= threshold

    ours = _prf(HELD_OUT_MOOD, lexicon)["f1"]
    for name, predict in {
        "vader": vader,
        "either": lambda x: lexicon(x) or vader(x),
        "both": lambda x: lexicon(x) and vader(x),
    }.items():
        theirs = _prf(HELD_OUT_MOOD, predict)["f1"]
        assert ours >= theirs, f"{name} now scores F1 {theirs} against the lexicon's {ours}: revisit ADR 0010"


@pytest.mark.parametrize(
    ("text", "upset"),
    [("Thanks, that fixed it!", False), ("This is the worst service I have ever had, I'm furious", True)],
)
def test_vader_is_wired_in_and_reads_plain_cases(text: str, upset: bool) -> None:
    assert (vader_compound(text) <= _vader_threshold()) is upset
