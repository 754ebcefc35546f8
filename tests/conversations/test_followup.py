"""Follow-ups searched with the previous question's subject (apps/conversations/answering/followup.py)."""

from __future__ import annotations

import pytest

from apps.conversations.answering.followup import carry_over, is_followup, rewrite_acceptable

ZONE3 = "How much does a Travel Pass cost per day in Zone 3?"


def test_and_in_zone_2_is_the_zone_3_question_asked_about_zone_2():
    assert carry_over("And in Zone 2?", ZONE3) == "How much does a Travel Pass cost per day in Zone 2?"


def test_a_follow_up_without_a_counted_thing_adds_its_words_to_the_previous_question():
    carried = carry_over("What about Switzerland?", "Is roaming in the EU free?")
    assert carried.startswith("Is roaming in the EU free?")
    assert "Switzerland" in carried


@pytest.mark.parametrize(
    "question",
    [
        "How long do I have to return a phone?",
        "My broadband has been down for three days, do I get anything back?",
    ],
)
def test_a_question_that_stands_alone_is_searched_as_it_is(question):
    assert not is_followup(question)
    assert carry_over(question, ZONE3) == question


def test_no_previous_question_means_no_carry_over():
    assert carry_over("And in Zone 2?", None) == "And in Zone 2?"


def test_a_rewrite_must_keep_the_new_things_and_invent_none():
    assert rewrite_acceptable("How much is a Travel Pass per day in Zone 2?", "And in Zone 2?", ZONE3)
    assert not rewrite_acceptable("How much is a Travel Pass per day in Zone 3?", "And in Zone 2?", ZONE3)
    assert not rewrite_acceptable("How much is a Travel Pass in Zone 4?", "And in Zone 2?", ZONE3)
    assert not rewrite_acceptable("", "And in Zone 2?", ZONE3)
