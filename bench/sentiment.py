"""The "upset customer" detector against VADER (vaderSentiment), on the labelled corpus of
tests/guardrails/test_sentiment.py.

    .venv/bin/python bench/sentiment.py

Three detectors are scored for precision, recall and F1 on the TUNING set and, separately, on the HELD-OUT
set (written after the word lists, never tuned on):

- lexicon: `apps.guardrails.sentiment.mood(...).angry`, the desk's own word lists, negation and intensity;
- vader: VADER's compound score at or below a threshold. The threshold is chosen on the tuning set only (the
  best F1 over -0.95..-0.05), then applied unchanged to the held-out set;
- either: upset when either says so (recall first); both: when both do (precision first).

VADER is a maintained, general-purpose lexicon (social-media English); the question is whether it reads
support messages ("Third outage this week", "How many times do I have to explain") better than the desk's
own lists. Prints a table and, last, one line of JSON.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.test")

import django
from django.apps import apps as django_apps

if not django_apps.ready:  # run as a script; under pytest Django is already set up
    django.setup()

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from apps.guardrails.pii import RedactedText
from apps.guardrails.sentiment import mood
from tests.guardrails.test_sentiment import HELD_OUT_MOOD, TUNING_MOOD

Rows = Sequence[tuple[str, object]]
_vader = SentimentIntensityAnalyzer()


def _prf(rows: Rows, predict: Callable[[str], bool]) -> dict[str, float]:
    tp = fp = fn = 0
    for text, label in rows:
        got, wanted = predict(text), label == "upset"
        tp += got and wanted
        fp += got and not wanted
        fn += wanted and not got
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def lexicon(text: str) -> bool:
    return mood(RedactedText.stored(text)).angry


def vader_compound(text: str) -> float:
    return float(_vader.polarity_scores(text)["compound"])


def main() -> None:
    candidates = [round(-0.05 * i, 2) for i in range(1, 20)]
    threshold = max(candidates, key=lambda t: (_prf(TUNING_MOOD, lambda x: vader_compound(x) <= t)["f1"], t))

    def vader(text: str) -> bool:
        return vader_compound(text) <= threshold

    detectors: dict[str, Callable[[str], bool]] = {
        "lexicon": lexicon,
        "vader": vader,
        "either": lambda x: lexicon(x) or vader(x),
        "both": lambda x: lexicon(x) and vader(x),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    print(f"VADER threshold chosen on the tuning set: compound <= {threshold}")
    print(f"{'detector':<9} {'set':<9} {'n':>3} {'precision':>9} {'recall':>7} {'F1':>6}")
    for name, predict in detectors.items():
        results[name] = {}
        for label, rows in (("tuning", TUNING_MOOD), ("held out", HELD_OUT_MOOD)):
            figures = _prf(rows, predict)
            results[name][label] = figures
            print(
                f"{name:<9} {label:<9} {len(rows):>3} {figures['precision']:>9.2f} "
                f"{figures['recall']:>7.2f} {figures['f1']:>6.2f}"
            )
    misses = [text for text, label in HELD_OUT_MOOD if label == "upset" and not vader(text)]
    alarms = [text for text, label in HELD_OUT_MOOD if label != "upset" and vader(text)]
    for text in misses:
        print(f"    vader missed: {text!r} ({vader_compound(text):+.2f})")
    for text in alarms:
        print(f"    vader false alarm: {text!r} ({vader_compound(text):+.2f})")
    print(json.dumps({"vader_threshold": threshold, "results": results}))


if __name__ == "__main__":
    main()
