"""Sentence units cut from chunk text (apps/knowledge/parsing/sentences.py): pure, no database."""

from __future__ import annotations

import itertools
import re

import pytest

from apps.knowledge.parsing import Block, Extracted, Limits, chunk, extract
from apps.knowledge.parsing.sentences import overlap_length, sentence_drafts, split_units
from tests.knowledge.fixtures import prose


def units(text: str) -> list[str]:
    return [text[start:end] for start, end in split_units(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Refunds take 5 days. After that, contact us! Why? Because.",
            ["Refunds take 5 days.", "After that, contact us!", "Why?", "Because."],
        ),
        # Abbreviations and amounts never end a sentence.
        (
            "Pay by card, e.g. Visa. It takes approx. 30 minutes. Call e.g. Ireland or Spain.",
            ["Pay by card, e.g. Visa.", "It takes approx. 30 minutes.", "Call e.g. Ireland or Spain."],
        ),
        (
            "A paper bill costs €12.50. Visit store No. 5 or see p. 12 for details. Max. 10 GB a day.",
            [
                "A paper bill costs €12.50.",
                "Visit store No. 5 or see p. 12 for details.",
                "Max. 10 GB a day.",
            ],
        ),
        # "No." before a capital is a word that ends a sentence.
        (
            "Can I pay in cheques? No. We stopped in 2020.",
            ["Can I pay in cheques?", "No.", "We stopped in 2020."],
        ),
        (
            'He said "Stop." Then he left. Dr. Lee agreed (i.e. Mr. Smith too).',
            ['He said "Stop."', "Then he left.", "Dr. Lee agreed (i.e. Mr. Smith too)."],
        ),
        # List items, ordered ones included, and table rows are units of their own; so is a lead-in.
        (
            "You can pay by:\n\n- card. It is instant.\n\n1. Cash at a store.\n12. Bank transfer.",
            ["You can pay by:", "- card.", "It is instant.", "1. Cash at a store.", "12. Bank transfer."],
        ),
        (
            "Plan | Price | Data\nBasic | €12.50 | 5 GB\nMax | €30 | Unlimited",
            ["Plan | Price | Data", "Basic | €12.50 | 5 GB", "Max | €30 | Unlimited"],
        ),
        # Rules and bullets alone carry nothing; CJK full stops end sentences without a space.
        ("---\n-\n日本語です。次の文。", ["日本語です。", "次の文。"]),
        ("", []),
    ],
)
def test_units_split_at_sentences_lines_and_items_but_not_abbreviations(text, expected):
    assert units(text) == expected


def test_unit_offsets_point_at_the_verbatim_text():
    text = "  You can pay by:\n\n- card, e.g. Visa.  It is instant. \n"
    spans = split_units(text)
    assert [text[s:e] for s, e in spans] == ["You can pay by:", "- card, e.g. Visa.", "It is instant."]
    assert spans[0] == (2, 17)


def test_a_markdown_policy_becomes_units_in_reading_order_with_their_sections():
    data = """# Payments

## Ways to pay

You can pay by:

- card, e.g. Visa or Mastercard;
- cash at store No. 5 (approx. 10 minutes from the station).

A paper bill costs €2.50. It is free for customers aged 75 or over.

| Plan | Price |
| --- | --- |
| Basic | €12.50 |

## Late fees

A late fee of €7.50 applies after 10 days.
""".encode()
    drafts = sentence_drafts(chunk(extract(data, "markdown", Limits())))
    assert [(d.ordinal, d.chunk_ordinal, d.section_ordinal, d.text) for d in drafts] == [
        (0, 0, 0, "You can pay by:"),
        (1, 0, 0, "- card, e.g. Visa or Mastercard;"),
        (2, 0, 0, "- cash at store No. 5 (approx. 10 minutes from the station)."),
        (3, 0, 0, "A paper bill costs €2.50."),
        (4, 0, 0, "It is free for customers aged 75 or over."),
        (5, 0, 0, "Plan | Price"),
        (6, 0, 0, "Basic | €12.50"),
        (7, 1, 1, "A late fee of €7.50 applies after 10 days."),
    ]
    assert drafts[0].section_path == ("Payments", "Ways to pay")
    assert drafts[-1].section_path == ("Payments", "Late fees")


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text)


@pytest.mark.parametrize(("target", "overlap"), [(220, 40), (60, 20), (30, 25)])
def test_overlapping_chunks_give_every_sentence_once_from_the_first_chunk_holding_it(target, overlap):
    body, other = prose(7, 60), prose(8, 10)
    long_sentence = " ".join(f"word{i}" for i in range(300)) + "."  # cut between words by the chunker
    blocks = [
        Block(text=body, section_path=("A",), page=1, section_index=1),
        Block(text=long_sentence, section_path=("A",), page=1, section_index=1),
        Block(text=other, section_path=("B",), page=2, section_index=2),
    ]
    chunks = chunk(
        Extracted(kind="text", title="t", blocks=blocks, page_count=2),
        target_tokens=target,
        max_tokens=max(target, 60) + 20,
        overlap_tokens=overlap,
    )
    assert sum(overlap_length(a.text, b.text) > 0 for a, b in itertools.pairwise(chunks)) >= 1
    drafts = sentence_drafts(chunks)
    texts = [d.text for d in drafts]
    prose_units = [t for t in texts if not t.startswith("word")]
    assert prose_units == _sentences(body) + _sentences(other)  # each once, in order
    # The long sentence comes back whole, in consecutive pieces that never repeat a word.
    assert " ".join(t for t in texts if t.startswith("word")) == long_sentence
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))
    for d in drafts:
        holder = chunks[d.chunk_ordinal]
        assert holder.text[d.start : d.end] == d.text
        earlier = [c for c in chunks[: d.chunk_ordinal] if c.section_path == holder.section_path]
        assert not any(d.text in c.text for c in earlier) or d.text.startswith("word")
    assert {d.section_path: d.section_ordinal for d in drafts} == {("A",): 0, ("B",): 1}


def test_overlap_is_whole_words_at_the_end_of_the_previous_chunk():
    assert overlap_length("One two. Three four.", "Three four.\n\nFive.") == len("Three four.")
    assert overlap_length("One two. Three four.", "hree four. Five.") == 0  # not a word start
    assert overlap_length("One two.", "Five six.") == 0
