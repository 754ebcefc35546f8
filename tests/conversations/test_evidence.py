"""Evidence ranking, choice and assembly on hand-made candidates (no database): the rules the module
docstring of apps/conversations/answering/evidence.py states, each checked by a case that fails without it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from apps.conversations.answering.evidence import (
    answer_type,
    evidence_assemble,
    evidence_choose,
    evidence_rank,
    needs_previous,
)
from apps.conversations.answering.quote import quote_text
from apps.conversations.answering.terms import content_terms, qualified_things

DOC = uuid.uuid4()


@dataclass(frozen=True)
class Hit:
    text: str
    similarity: float
    ordinal: int
    section_path: list[str] = field(default_factory=lambda: ["Travel Pass"])
    passage_similarity: float = 0.5
    document_id: uuid.UUID = DOC
    document_title: str = "Roaming and Travel Policy"
    version_number: int = 3
    page: int | None = None
    sentence_id: uuid.UUID = field(default_factory=uuid.uuid4)
    chunk_id: uuid.UUID = field(default_factory=uuid.uuid4)


def test_a_sentence_naming_another_zone_loses_to_the_one_naming_the_asked_zone():
    zone2 = Hit("A Travel Pass costs €6 per day in Zone 2.", similarity=0.80, ordinal=1)
    zone3 = Hit("A Travel Pass costs €12 per day in Zone 3.", similarity=0.74, ordinal=2)
    ranked = evidence_rank("How much is a Travel Pass per day in Zone 3?", [zone2, zone3])
    assert ranked[0].candidate is zone3


def test_a_question_asking_how_much_prefers_a_sentence_with_an_amount():
    talk = Hit("The Travel Pass is added in the app and stays on your account.", similarity=0.70, ordinal=1)
    price = Hit("The Travel Pass is charged at €6 for each day you use it.", similarity=0.66, ordinal=2)
    assert evidence_rank("How much does the Travel Pass cost?", [talk, price])[0].candidate is price
    # the same two sentences for a question asking for no amount keep their similarity order
    assert evidence_rank("Where do I add the Travel Pass?", [talk, price])[0].candidate is talk


@pytest.mark.parametrize(
    ("question", "holding"),
    [
        ("How much is a data boost?", "It costs €12."),
        ("How long is my PAC valid?", "valid for 30 days"),
        ("How many eSIM transfers are free?", "three transfers"),
        ("Is roaming in the EU free?", "at no extra cost"),
    ],
)
def test_answer_types(question, holding):
    wanted = answer_type(question)
    assert wanted is not None
    assert wanted.search(holding)
    assert answer_type("Can I keep my number?") is None


def test_a_far_weaker_sentence_is_not_added_but_a_close_paraphrase_is():
    # shares the question's words
    named = Hit("Zone 1 covers all European Union countries.", 0.78, ordinal=2, section_path=["Zones"])
    question = "Is roaming in the European Union free?"
    # shares none of them ("free" / "at no extra cost") but is as near in meaning
    paraphrase = Hit("In Zone 1 you use your plan as you do at home, at no extra cost.", 0.80, ordinal=10)
    weak = Hit(
        "Calls at sea cost €5 per minute.", 0.3, ordinal=40, section_path=["Sea"], passage_similarity=0.1
    )
    chosen = evidence_choose(evidence_rank(question, [named, paraphrase, weak]))
    assert {r.candidate.text for r in chosen} == {named.text, paraphrase.text}
    # a lookalike that is neither nearer in meaning nor adds a question word stays out
    lookalike = Hit(
        "Zone 1 covers the European Union and Switzerland.", 0.7, ordinal=3, section_path=["Other"]
    )
    chosen = evidence_choose(evidence_rank(question, [named, lookalike]))
    assert [r.candidate.text for r in chosen] == [named.text]


def test_a_sentence_that_leans_back_brings_its_lead_in_and_a_lead_in_brings_its_items():
    lead = Hit("You can pay your bill by:", 0.4, ordinal=4, section_path=["Paying"])
    item1 = Hit("direct debit, which saves €1 a month;", 0.5, ordinal=5, section_path=["Paying"])
    item2 = Hit("card in the app.", 0.3, ordinal=6, section_path=["Paying"])
    leaning = Hit("This fee is waived for customers over 75.", 0.8, ordinal=9, section_path=["Paper bills"])
    before = Hit("Paper bills cost €2.50 a month.", 0.5, ordinal=8, section_path=["Paper bills"])
    assert needs_previous(leaning.text)
    assert not needs_previous(before.text)
    ranked = evidence_rank("Is the paper bill fee waived?", [leaning])
    evidence = evidence_assemble(ranked[:1], {leaning.sentence_id: ([before], [])})
    assert evidence.items[0].sentences == (before.text, leaning.text)
    ranked = evidence_rank("How can I pay my bill?", [lead])
    evidence = evidence_assemble(ranked[:1], {lead.sentence_id: ([], [item1, item2])})
    assert evidence.items[0].sentences == (lead.text, item1.text, item2.text)


def test_adjacent_sentences_of_one_section_become_one_cited_unit_and_the_quote_cites_each_unit():
    a = Hit("A Travel Pass lets you use your allowance in Zone 2 for a daily fee.", 0.8, ordinal=3)
    b = Hit("You are only charged the fee on days you use your phone.", 0.79, ordinal=4)
    other = Hit("Zone 2 covers the United States.", 0.78, ordinal=1, section_path=["Zones"])
    ranked = evidence_rank("Which days am I charged for a Travel Pass in Zone 2?", [a, b, other])
    evidence = evidence_assemble(evidence_choose(ranked), {})
    units = [item.sentences for item in evidence.items]
    assert (a.text, b.text) in units
    assert [item.n for item in evidence.items] == list(range(1, len(units) + 1))
    text = quote_text(evidence)
    assert text.startswith("Here is what our policy says:")
    for item in evidence.items:
        assert f"\u201c{item.text}\u201d [{item.n}]" in text
    citation = evidence.citations()[0]
    assert (citation["title"], citation["version"]) == ("Roaming and Travel Policy", 3)
    assert citation["quoted"] is True


def test_terms_and_counted_things():
    assert "return" in content_terms("Can I return my phone?")
    assert "returns" not in content_terms("returns")
    assert qualified_things("Travel Pass in Zone 3 for three days") == {("zone", "3"), ("day", "3")}
    assert ("€", "12") in qualified_things("It costs €12.00 a day")
