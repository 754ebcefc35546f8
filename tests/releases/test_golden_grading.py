"""Grading (apps/releases/grading.py) and the answers table (apps/releases/report.py): the rules
bench/answers.py and golden runs share."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from apps.releases.grading import answer_grade, numbers_in, unsupported_numbers
from apps.releases.report import table_lines

ROAMING = "Roaming and Travel Policy"
ANSWER = (
    "Here is what our policy says:\n\n\u201cYou can use your plan in the EU at no extra charge.\u201d [1]"
)


def test_right_needs_the_fact_and_the_policy_cited():
    verdict = answer_grade(
        text=ANSWER,
        titles=[ROAMING],
        answerable=True,
        expect=["no extra cost", "at no extra charge"],
        document=ROAMING,
    )
    assert (verdict.right, verdict.abstained, verdict.document_cited) == (True, False, True)


def test_fact_matching_folds_case_curly_quotes_and_spaces():
    text = "You\u2019ll  pay   WITHIN\n14 Days of the bill date."
    verdict = answer_grade(
        text=text,
        titles=["Billing"],
        answerable=True,
        expect=["you'll pay within 14 days"],
        document="billing",
    )
    assert verdict.right is True


def test_wrong_citation_is_wrong_even_with_the_fact():
    verdict = answer_grade(
        text=ANSWER,
        titles=["Billing and Payments Policy"],
        answerable=True,
        expect=["at no extra charge"],
        document=ROAMING,
    )
    assert (verdict.right, verdict.document_cited) == (False, False)


def test_the_policy_cited_without_the_fact_is_wrong():
    verdict = answer_grade(text=ANSWER, titles=[ROAMING], answerable=True, expect=["12"], document=ROAMING)
    assert (verdict.right, verdict.document_cited) == (False, True)


def test_labelled_set_accepts_any_citation_but_not_none():
    common: dict[str, Any] = {
        "text": ANSWER,
        "answerable": True,
        "expect": ["no extra charge"],
        "document": ROAMING,
        "need_document": False,
    }
    assert answer_grade(titles=["Another policy"], **common).right is True
    assert answer_grade(titles=[], **common).right is False


def test_an_abstention_is_right_only_for_an_unanswerable_question():
    text = "I couldn't find this in our published policies, so I'd rather not guess."
    unanswerable = answer_grade(text=text, titles=[], answerable=False)
    assert (unanswerable.right, unanswerable.abstained) == (True, True)
    answerable = answer_grade(text=text, titles=[], answerable=True, expect=["14 days"], document=ROAMING)
    assert (answerable.right, answerable.abstained) == (False, True)


def test_an_unanswerable_question_answered_with_a_citation_is_wrong():
    text = "I couldn't find this exactly, but here is our roaming policy [1]."
    verdict = answer_grade(text=text, titles=[ROAMING], answerable=False)
    assert (verdict.right, verdict.abstained) == (False, False)
    # Cites nothing but does not say it does not know: not an abstention either.
    assert answer_grade(text="Laptops are great.", titles=[], answerable=False).right is False


def test_the_reply_flag_counts_as_an_abstention():
    verdict = answer_grade(
        text="Shall I get a person?",
        titles=[],
        answerable=True,
        expect=["x"],
        document=ROAMING,
        reply_abstained=True,
    )
    assert (verdict.right, verdict.abstained) == (False, True)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("It costs \u20ac12.00 a day", {"12"}),
        ("1,000 minutes and 2.50 euros", {"1000", "2.5"}),
        ("three transfers in thirty days", {"3", "30"}),
        ("no numbers here", set()),
    ],
)
def test_numbers_in(text, numbers):
    assert numbers_in(text) == numbers


def test_unsupported_numbers_lists_each_sentence_with_a_number_the_evidence_lacks():
    found = unsupported_numbers(
        shown=["A Travel Pass costs 12 euros a day.", "It lasts 5 days.", "Zone 3 is covered."],
        evidence=["The Travel Pass costs \u20ac12 per day in Zone 3."],
        question="How much is it for 5 days?",
    )
    assert found == [{"sentence": "It lasts 5 days.", "missing": ["5"], "in_question": True}]


def _bench_answers():
    """bench/answers.py as the benchmark runs it (it puts the repository root on sys.path itself)."""
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("bench_answers_under_test", root / "bench" / "answers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ROW = {
    "right": 11,
    "answerable": 12,
    "abstained_right": 4,
    "unanswerable": 4,
    "wrongly_abstained": 1,
    "unsupported_shown": 0,
    "composed_shown": 3,
    "dropped": 2,
    "first_content_ms": {"p50": 41.5, "p95": 120.0},
    "complete_ms": {"p50": None, "p95": None},
    "failed": 0,
}


def test_the_table_has_benchs_columns_and_bench_prints_it(capsys):
    lines = table_lines([("quote", "golden", ROW)])
    assert lines[:3] == [
        "right: answerable and right / answerable; abstained: rightly abstained / unanswerable; wrongly:",
        "answerable but abstained; unsupported: composed sentences shown with a number the evidence lacks;",
        "composed: composed sentences shown; dropped: refused by the support check; times in ms from send",
    ]
    assert lines[3] == ""
    assert lines[4] == (
        "style    set             right  abstained  wrongly  unsupported  composed  dropped  first p50"
        "     p95  complete p50     p95  failed"
    )
    assert lines[5] == (
        "quote    golden        11/12       4/4           1            0         3        2       41.5"
        "   120.0             -       -       0"
    )
    bench = _bench_answers()
    bench.print_table({"quote": {"acceptance": ROW}, "compose": {"labelled": ROW}}, None)
    printed = capsys.readouterr().out.splitlines()
    assert printed[:5] == lines[:5]
    assert printed[5] == lines[5].replace("golden    ", "acceptance")
    assert printed[6].startswith("compose  labelled      11/12")
    assert len(printed) == 7
