"""The document-processing package: sniffing, extraction per format, hidden-content removal, chunking and
the bounded worker. Pure functions: no database."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import docx
import psutil
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import parse_xml
from docx.shared import Pt, RGBColor

from apps.knowledge.parsing import (
    Block,
    Extracted,
    IngestionError,
    Limits,
    chunk,
    count_words,
    estimate_tokens,
    extract,
    extract_bounded,
    sniff,
)
from apps.knowledge.parsing.cleaning import clean_text
from tests.knowledge.fixtures import (
    ELF_BYTES,
    OLE_DOC_BYTES,
    PNG_BYTES,
    PdfPage,
    bounded_in_subprocess,
    build_pdf,
    docx_bytes,
    encrypt_pdf,
    prose,
    zip_bomb_docx,
    zip_with,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits()


def rows(extracted: Extracted) -> list[tuple[str, tuple[str, ...], int | None]]:
    return [(block.text, block.section_path, block.page) for block in extracted.blocks]


def all_text(extracted: Extracted) -> str:
    chunks = chunk(extracted)
    return "\n".join([b.text for b in extracted.blocks] + [c.text for c in chunks] + [extracted.title])


def raises_code(code: str) -> pytest.RaisesExc[IngestionError]:
    return pytest.raises(IngestionError, check=lambda exc: exc.code == code)


# --- fixtures ---------------------------------------------------------------------------------------

P = {n: prose(n, 3) for n in range(1, 9)}


@pytest.fixture(scope="module")
def policy_pdf() -> bytes:
    return build_pdf(
        [
            PdfPage([("h", "1. Scope"), ("p", P[1]), ("p", P[2]), ("h", "1.1 Who is covered"), ("p", P[3])]),
            PdfPage([("p", P[4]), ("h", "2. Late payments"), ("p", P[5])]),
            PdfPage([("h", "GENERAL TERMS"), ("p", P[6]), ("h", "Contact Us"), ("p", P[7])]),
        ]
    )


@pytest.fixture(scope="module")
def policy_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Core properties title"
    document.add_paragraph("Refund Policy", style="Title")
    document.add_paragraph("Intro paragraph before any heading.")
    document.add_heading("Billing", level=1)
    paragraph = document.add_paragraph("Invoices are sent monthly")
    paragraph.add_run(" HIDDEN-DIRECT").font.hidden = True
    paragraph.add_run(" HIDDEN-WHITE").font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
    paragraph.add_run(".")
    document.add_comment(paragraph.runs[0], text="HIDDEN-COMMENT reviewer note", author="Reviewer")
    document.add_heading("Late payments", level=2)
    secret = document.styles.add_style("Secret", WD_STYLE_TYPE.CHARACTER)
    secret.font.hidden = True
    paragraph = document.add_paragraph("A late fee applies after 14 days.")
    paragraph.add_run(" HIDDEN-STYLE", style="Secret")
    paragraph.add_run(" HIDDEN-TINY").font.size = Pt(0.5)
    # A tracked deletion: Word shows it struck through only with change tracking on.
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    paragraph._p.append(
        parse_xml(f'<w:del {w} w:id="9" w:author="x"><w:r><w:t>HIDDEN-DELETED</w:t></w:r></w:del>')
    )
    table = document.add_table(rows=3, cols=2)
    for row, (plan, fee) in enumerate([("Plan", "Fee"), ("Basic", "5 EUR"), ("Pro", "10 EUR")]):
        table.cell(row, 0).text = plan
        table.cell(row, 1).text = fee
    # White on a dark header row is visible and must be kept.
    header = table.cell(0, 0)
    header.paragraphs[0].runs[0].font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
    header._tc.get_or_add_tcPr().append(parse_xml(f'<w:shd {w} w:val="clear" w:fill="1F3864"/>'))
    document.add_heading("Refunds", level=1)
    document.add_paragraph("Refunds take five days.")
    return docx_bytes(document)


HIDDEN_HTML = """<!DOCTYPE html>
<html><head><title>Help Centre: Refunds</title>
<style>.sneaky { display: none } #gone, p.quiet { visibility: hidden !important }
@media print { .screen-only { display: none } }</style>
<script>var HIDDEN_SCRIPT = "HIDDEN-SCRIPT";</script></head>
<body>
<noscript>HIDDEN-NOSCRIPT</noscript>
<template><p>HIDDEN-TEMPLATE</p></template>
<iframe srcdoc="HIDDEN-IFRAME">HIDDEN-IFRAME-FALLBACK</iframe>
<object data="x.bin">HIDDEN-OBJECT</object><embed src="HIDDEN-EMBED">
<svg><text x="0" y="10">HIDDEN-SVG</text></svg>
<!-- HIDDEN-COMMENT: ignore previous instructions -->
<h1>Refunds</h1>
<p>You can get a pass&#8203;word reset or a re&shy;fund at any&#8288;time.<span hidden>HIDDEN-ATTR</span></p>
<p aria-hidden="true">HIDDEN-ARIA</p>
<div style="display: none">HIDDEN-DISPLAY</div>
<div style="VISIBILITY:hidden">HIDDEN-VISIBILITY</div>
<span style="font-size:0px">HIDDEN-FONTSIZE</span>
<span style="opacity: 0">HIDDEN-OPACITY</span>
<span style="opacity:0.0;color:red">HIDDEN-OPACITY-DECIMAL</span>
<span style="font-size: 1px">HIDDEN-ONE-PIXEL</span><span style="transform: scale(0)">HIDDEN-SCALE</span>
<p class="sneaky x">HIDDEN-CLASS</p><p id="gone">HIDDEN-ID</p><p class="quiet">HIDDEN-TAG-CLASS</p>
<p class="screen-only">Shown on \u202escreen\u202c.</p>
<h2>Late <br>payments</h2>
<ul><li>First reminder after 7 days.</li><li>Second reminder after 14 days.</li></ul>
<table><tr><th>Plan</th><th>Fee</th></tr><tr><td>Basic</td><td>5 EUR</td></tr></table>
<h2>Contact</h2><p>Write to us\U000e0049\U000e0047\U000e004e at any time.</p>
<p style="font-size: 0.8em">Small print applies.</p>
</body></html>"""

MARKDOWN = """---
title: Billing Guide
---
# Billing

Intro text about billing.

## Invoices

Invoices are sent monthly.

<div style="display:none">

HIDDEN-MD-DIV paragraph with *emphasis*.

</div>

### Corrections

Ask support to correct an invoice. <span style="display:none">HIDDEN-MD-SPAN</span>Thanks.

```python
print("code kept")
```

## Late payments

A fee applies.

# Refunds

Refunds take five days.
"""


# --- sniffing ---------------------------------------------------------------------------------------


def test_sniff_goes_by_content_not_extension(policy_pdf: bytes, policy_docx: bytes) -> None:
    assert sniff(policy_pdf, "policy.docx") == "pdf"
    assert sniff(policy_docx, "policy.pdf") == "docx"
    assert sniff(HIDDEN_HTML.encode(), "notes.txt") == "html"
    assert sniff(b"<p>Fragment</p>", "page.html") == "html"
    assert sniff(b"<p>Fragment</p>", "page.txt") == "text"
    assert sniff(MARKDOWN.encode(), "guide.md") == "markdown"
    assert sniff(MARKDOWN.encode(), "guide.txt") == "text"
    assert sniff(b"Plain words.", "README") == "text"
    assert sniff(b"Put scripts before </body> and <html> tags.", "notes.txt") == "text"
    assert sniff(b"<div>Inline HTML</div>\n\n# Heading\n<body>", "guide.md") == "markdown"
    assert sniff("Caf\u00e9 au lait.".encode("cp1252"), "menu.txt") == "text"
    assert sniff("\ufeffUTF-16 policy".encode("utf-16"), "policy.txt") == "text"


@pytest.mark.parametrize(
    ("data", "filename", "words"),
    [
        (PNG_BYTES, "policy.pdf", "a PNG image, not a document we can read"),
        (ELF_BYTES, "policy.docx", "a program (an ELF executable)"),
        (bytes(range(256)) * 16, "policy.txt", "not a document we can read"),
        (zip_with({"readme.txt": b"hi"}), "policy.docx", "a ZIP archive, not a Word document"),
        (zip_with({"xl/workbook.xml": b"<x/>"}), "policy.docx", "an Excel workbook"),
    ],
)
def test_sniff_rejects_renamed_binaries(data: bytes, filename: str, words: str) -> None:
    with raises_code("unsupported_type") as caught:
        sniff(data, filename)
    assert caught.value.message.startswith(f"This file is {words}")


def test_legacy_doc_is_refused_with_advice_to_save_as_docx_or_pdf() -> None:
    with raises_code("unsupported_type") as caught:
        sniff(OLE_DOC_BYTES, "policy.doc")
    assert caught.value.message == (
        "This file is an older Word (.doc) or Office file. "
        "Open it in Word and save it as DOCX or PDF, then upload it again."
    )


def test_password_protected_office_file_is_encrypted_not_unsupported() -> None:
    data = OLE_DOC_BYTES + "EncryptedPackage".encode("utf-16-le")
    with raises_code("encrypted"):
        sniff(data, "policy.docx")


def test_empty_file() -> None:
    with raises_code("empty"):
        sniff(b" \n", "policy.txt")


# --- cleaning ---------------------------------------------------------------------------------------


def test_clean_text_removes_invisible_characters_and_normalises() -> None:
    assert clean_text("pass\u200bword\u00ad re\u2060set") == "password reset"
    assert clean_text("\u202eevil\u202c \u2066isolated\u2069 \ufeffbom") == "evil isolated bom"
    assert clean_text("tag\U000e0041\U000e0042s and sel\ufe0fector") == "tags and selector"
    assert clean_text("\ufb01le \uff21\uff22\uff23 caf\u0065\u0301") == "file ABC caf\u00e9"
    assert clean_text("  a\t b\n\n\n c \x00d ") == "a b c d"
    assert clean_text("a  b\n\n\n\nc   ", keep_newlines=True) == "a  b\n\nc"


# --- PDF --------------------------------------------------------------------------------------------


def test_pdf_sections_pages_and_running_lines(policy_pdf: bytes) -> None:
    extracted = extract(policy_pdf, "pdf", LIMITS)
    assert (extracted.kind, extracted.title, extracted.page_count) == ("pdf", "Refund Policy", 3)
    general = ("2. Late payments", "GENERAL TERMS")
    assert rows(extracted) == [
        (P[1], ("1. Scope",), 1),
        (P[2], ("1. Scope",), 1),
        (P[3], ("1. Scope", "1.1 Who is covered"), 1),
        (P[4], ("1. Scope", "1.1 Who is covered"), 2),
        (P[5], ("2. Late payments",), 2),
        (P[6], general, 3),
        (P[7], (*general, "Contact Us"), 3),
    ]
    text = all_text(extracted)
    assert "Acme" not in text
    assert "Page" not in text


def test_pdf_running_footer_numbered_after_a_cover_goes_and_page_top_headings_stay() -> None:
    cover = PdfPage([("p", "Refund Policy, edition 2.")])
    body = [PdfPage([("h", f"{n}. Part {n}"), ("p", P[n])]) for n in range(2, 6)]
    data = build_pdf([cover, *body], header=None, first_numbered_page=2)
    assert rows(extract(data, "pdf", LIMITS)) == [
        ("Refund Policy, edition 2.", (), 1),
        *[(P[n], (f"{n}. Part {n}",), n) for n in range(2, 6)],
    ]


def test_pdf_without_metadata_title_uses_first_heading() -> None:
    data = build_pdf([PdfPage([("h", "3. Warranty"), ("p", P[8])])], title=None, header=None, footer=None)
    extracted = extract(data, "pdf", LIMITS)
    assert extracted.title == "3. Warranty"
    assert rows(extracted) == [(P[8], ("3. Warranty",), 1)]


def test_pdf_outline_decides_which_lines_are_headings() -> None:
    data = build_pdf(
        [
            PdfPage(
                [
                    ("h", "Overview"),
                    ("p", P[1]),
                    ("h", "IMPORTANT NOTICE"),
                    ("h", "Who can apply"),
                    ("p", P[2]),
                ]
            ),
            PdfPage([("h", "Exceptions"), ("p", P[3])]),
        ],
        outline={"Overview": 0, "Who can apply": 1, "Exceptions": 0},
    )
    assert rows(extract(data, "pdf", LIMITS)) == [
        (P[1], ("Overview",), 1),
        ("IMPORTANT NOTICE", ("Overview",), 1),
        (P[2], ("Overview", "Who can apply"), 1),
        (P[3], ("Exceptions",), 2),
    ]


def test_pdf_with_user_password_is_encrypted(policy_pdf: bytes) -> None:
    with raises_code("encrypted") as caught:
        extract(encrypt_pdf(policy_pdf, user_password="secret"), "pdf", LIMITS)
    assert caught.value.message == "This PDF is password-protected. Remove the password and upload it again."


def test_pdf_with_only_an_owner_password_is_read(policy_pdf: bytes) -> None:
    restricted = encrypt_pdf(policy_pdf, user_password="")
    assert rows(extract(restricted, "pdf", LIMITS)) == rows(extract(policy_pdf, "pdf", LIMITS))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_pdf_is_corrupt(policy_pdf: bytes, damage: str) -> None:
    data = policy_pdf[: len(policy_pdf) // 2] if damage == "truncated" else b"%PDF-1.7\n\x00garbage\n%%EOF\n"
    with raises_code("corrupt"):
        extract(data, "pdf", LIMITS)


def test_pdf_over_the_page_limit_is_too_complex(policy_pdf: bytes) -> None:
    with raises_code("too_complex") as caught:
        extract(policy_pdf, "pdf", Limits(max_pages=2))
    assert caught.value.message.startswith("This PDF has 3 pages; the limit is 2.")


def test_pdf_without_text_is_empty_and_says_what_to_do() -> None:
    data = build_pdf([PdfPage()], title=None, header=None, footer=None)
    with raises_code("empty") as caught:
        extract(data, "pdf", LIMITS)
    assert caught.value.message.startswith("The document has no readable text: if it is a scan")


# --- DOCX -------------------------------------------------------------------------------------------


def test_docx_headings_tables_and_hidden_text(policy_docx: bytes) -> None:
    extracted = extract(policy_docx, "docx", LIMITS)
    assert (extracted.kind, extracted.title, extracted.page_count) == ("docx", "Refund Policy", None)
    late = ("Billing", "Late payments")
    assert rows(extracted) == [
        ("Intro paragraph before any heading.", (), None),
        ("Invoices are sent monthly.", ("Billing",), None),
        ("A late fee applies after 14 days.", late, None),
        ("Plan | Fee\nBasic | 5 EUR\nPro | 10 EUR", late, None),
        ("Refunds take five days.", ("Refunds",), None),
    ]
    assert "HIDDEN" not in all_text(extracted)


def test_docx_zip_bomb_is_refused_before_inflating() -> None:
    bomb = zip_bomb_docx(uncompressed_bytes=200 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    assert sniff(bomb, "policy.docx") == "docx"
    with raises_code("too_complex") as caught:
        extract(bomb, "docx", LIMITS)
    assert caught.value.message.startswith(
        "This Word file expands to 200 MB when opened; the limit is 100 MB."
    )


def test_docx_compression_ratio_bomb_under_the_size_limit_is_refused() -> None:
    with raises_code("too_complex") as caught:
        extract(zip_bomb_docx(uncompressed_bytes=20 * 1024 * 1024), "docx", LIMITS)
    assert "zip bomb" in caught.value.message


def test_docx_with_too_many_parts_is_refused(policy_docx: bytes) -> None:
    with raises_code("too_complex") as caught:
        extract(policy_docx, "docx", Limits(max_parts=5))
    assert "the limit is 5" in caught.value.message


def test_docx_with_broken_xml_is_corrupt() -> None:
    data = zip_with({"word/document.xml": b"<w:document><unclosed>", "[Content_Types].xml": b"<Types/>"})
    with raises_code("corrupt"):
        extract(data, "docx", LIMITS)


# --- HTML, Markdown, text ---------------------------------------------------------------------------


def test_html_drops_every_kind_of_hidden_content() -> None:
    extracted = extract(HIDDEN_HTML.encode(), "html", LIMITS)
    assert extracted.title == "Help Centre: Refunds"
    late = ("Refunds", "Late payments")
    assert rows(extracted) == [
        ("You can get a password reset or a refund at anytime.", ("Refunds",), None),
        ("Shown on screen.", ("Refunds",), None),
        ("- First reminder after 7 days.", late, None),
        ("- Second reminder after 14 days.", late, None),
        ("Plan | Fee\nBasic | 5 EUR", late, None),
        ("Write to us at any time.", ("Refunds", "Contact"), None),
        ("Small print applies.", ("Refunds", "Contact"), None),
    ]
    assert "HIDDEN" not in all_text(extracted)


def test_html_list_items_keep_their_marker_through_inner_paragraphs() -> None:
    data = b"<ol start='3'><li><p>Third step.</p><ul><li>Detail.</li></ul></li><li>Fourth.</li></ol>"
    assert [b.text for b in extract(data, "html", LIMITS).blocks] == [
        "3. Third step.",
        "- Detail.",
        "4. Fourth.",
    ]


def test_html_nested_past_the_parser_depth_limit_is_too_complex() -> None:
    data = ("<div>" * 300 + "deep text" + "</div>" * 300).encode()
    with raises_code("too_complex"):
        extract(data, "html", LIMITS)


def test_html_control_characters_do_not_break_hidden_content_removal() -> None:
    words = " ".join(["filler"] * 200)
    data = f"<html><body><p>Keep <span hidden>HIDDEN</span>\x01this {words}</p></body></html>".encode()
    assert extract(data, "html", LIMITS).blocks[0].text == f"Keep this {words}"


def test_html_with_only_hidden_text_is_empty() -> None:
    with raises_code("empty"):
        extract(b'<html><body><div style="display:none">Secret</div></body></html>', "html", LIMITS)


def test_markdown_nested_headings_hidden_html_and_code() -> None:
    extracted = extract(MARKDOWN.encode(), "markdown", LIMITS)
    assert extracted.title == "Billing Guide"
    assert rows(extracted) == [
        ("Intro text about billing.", ("Billing",), None),
        ("Invoices are sent monthly.", ("Billing", "Invoices"), None),
        ("Ask support to correct an invoice. Thanks.", ("Billing", "Invoices", "Corrections"), None),
        ('print("code kept")', ("Billing", "Invoices", "Corrections"), None),
        ("A fee applies.", ("Billing", "Late payments"), None),
        ("Refunds take five days.", ("Refunds",), None),
    ]
    assert "HIDDEN" not in all_text(extracted)


def test_text_paragraphs_and_underlined_headings() -> None:
    data = (
        b"Refund Policy\n=============\n\nIntro line one\nline two.\n\n"
        b"Late payments\n-------------\nA fee applies.\n\n   \n\nMore.\n"
    )
    extracted = extract(data, "text", LIMITS)
    assert extracted.title == "Refund Policy"
    assert rows(extracted) == [
        ("Intro line one line two.", ("Refund Policy",), None),
        ("A fee applies.", ("Refund Policy", "Late payments"), None),
        ("More.", ("Refund Policy", "Late payments"), None),
    ]


def test_text_over_the_character_limit_is_too_complex() -> None:
    with raises_code("too_complex"):
        extract(b"word " * 100, "text", Limits(max_chars=100))


def test_too_large_message_names_both_sizes() -> None:
    data = b"a" * int(31.4 * 1024 * 1024)
    with raises_code("too_large") as caught:
        extract_bounded(data, "big.txt", LIMITS)
    assert (
        caught.value.message == "This file is 31.4 MB; the limit is 20 MB. Split it or compress its images."
    )


# --- chunking ---------------------------------------------------------------------------------------


def section_blocks() -> list[Block]:
    """Four sections with a marker word in every sentence, so a chunk's origin is visible in its text."""

    def sentences(marker: str, seed: int, count: int) -> str:
        return " ".join(f"{s.rstrip('.')} {marker}." for s in re.split(r"(?<=\.) ", prose(seed, count)))

    blocks: list[Block] = []
    # s1: many small paragraphs, packed together.
    blocks += [Block(sentences("s1", 100 + n, 1), ("Billing",), 1, 1) for n in range(30)]
    # s2: one paragraph far over max_tokens, split at sentences; then a run-on "sentence" with no stops.
    blocks.append(Block(sentences("s2", 200, 40), ("Billing", "Late"), 2, 2))
    blocks.append(Block(" ".join(["s2", "overdue"] * 300), ("Billing", "Late"), 3, 2))
    # s3 and s4: same title, different sections; they must not merge.
    blocks.append(Block(sentences("s3", 300, 2), ("FAQ",), 4, 3))
    blocks.append(Block("\n".join(f"Row s4 {n} | {n * 5} EUR" for n in range(120)), ("FAQ",), 4, 4))
    return blocks


def test_chunks_follow_sections_and_respect_the_budget() -> None:
    blocks = section_blocks()
    chunks = chunk(Extracted(kind="text", title="", blocks=blocks, page_count=None))
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    by_section: dict[int, list[int]] = {}
    for c in chunks:
        assert c.token_estimate == estimate_tokens(c.text)
        assert 0 < c.token_estimate <= 320
        section = marker_section(c.text)
        assert c.section_path == next(b.section_path for b in blocks if b.section_index == section)
        by_section.setdefault(section, []).append(c.ordinal)
    # Sections are contiguous runs of chunks, in document order.
    assert sorted(by_section) == [1, 2, 3, 4]
    assert [o for s in sorted(by_section) for o in by_section[s]] == list(range(len(chunks)))
    assert len(by_section[3]) == 1
    # Small paragraphs are packed: 30 one-sentence paragraphs fit in a few chunks, joined as paragraphs.
    first = chunks[by_section[1][0]]
    assert len(by_section[1]) <= 4
    assert first.text.count("\n\n") >= 5
    assert first.token_estimate >= 150
    # Every sentence of the long paragraph is somewhere, whole.
    s2_text = " ".join(chunks[o].text for o in by_section[2])
    for sentence in re.split(r"(?<=\.) ", blocks[30].text):
        assert sentence in s2_text
    # Pages: where each chunk starts.
    assert {chunks[o].page for o in by_section[1]} == {1}
    assert chunks[by_section[4][0]].page == 4


def marker_section(text: str) -> int:
    (found,) = set(re.findall(r"\bs([1-4])\b", text))
    return int(found)


def test_consecutive_chunks_of_a_section_overlap_and_sections_do_not() -> None:
    blocks = section_blocks()
    chunks = chunk(Extracted(kind="text", title="", blocks=blocks, page_count=None))
    for previous, current in itertools.pairwise(chunks):
        head = " ".join(current.text.split()[:5])
        same_section = marker_section(previous.text) == marker_section(current.text)
        assert (head in previous.text) == same_section, current.ordinal
    no_overlap = chunk(Extracted(kind="text", title="", blocks=blocks, page_count=None), overlap_tokens=0)
    # Without overlap every word appears exactly once.
    assert sum(count_words(c.text) for c in no_overlap) == sum(count_words(b.text) for b in blocks)


def test_chunking_a_real_pdf_keeps_paths_and_pages(policy_pdf: bytes) -> None:
    extracted = extract(policy_pdf, "pdf", LIMITS)
    chunks = chunk(extracted, target_tokens=60, max_tokens=90, overlap_tokens=10)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.token_estimate <= 90 for c in chunks)
    for c in chunks:
        sources = [b for b in extracted.blocks if b.section_path == c.section_path]
        assert sources
        assert c.page in {b.page for b in sources}
    assert chunks[0].section_path == ("1. Scope",)
    assert chunks[-1].section_path == ("2. Late payments", "GENERAL TERMS", "Contact Us")


def test_chunk_rejects_inconsistent_budgets() -> None:
    extracted = Extracted(kind="text", title="", blocks=[Block("x", (), None)], page_count=None)
    with pytest.raises(ValueError, match="target_tokens"):
        chunk(extracted, target_tokens=400, max_tokens=320)
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk(extracted, target_tokens=100, overlap_tokens=100)


# --- bounded extraction -----------------------------------------------------------------------------


def children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def big_markdown() -> bytes:
    """~2.7 MB of valid Markdown: about two seconds and 150 MB to parse."""
    paragraphs = (f"Paragraph {n} explains refunds and billing in plain words." for n in range(40_000))
    return ("# Title\n\n" + "\n\n".join(paragraphs)).encode()


def test_bounded_matches_in_process(policy_pdf: bytes, policy_docx: bytes) -> None:
    assert extract_bounded(policy_pdf, "policy.pdf", LIMITS) == extract(policy_pdf, "pdf", LIMITS)
    assert extract_bounded(policy_docx, "p.docx", LIMITS) == extract(policy_docx, "docx", LIMITS)
    html = HIDDEN_HTML.encode()
    assert extract_bounded(html, "page.htm", LIMITS) == extract(html, "html", LIMITS)


def test_bounded_reports_the_parsers_error(policy_pdf: bytes) -> None:
    with raises_code("encrypted"):
        extract_bounded(encrypt_pdf(policy_pdf, user_password="secret"), "policy.pdf", LIMITS)
    with raises_code("unsupported_type"):
        extract_bounded(PNG_BYTES, "policy.pdf", LIMITS)


def test_bounded_timeout_kills_the_child() -> None:
    before = children()
    started = time.monotonic()
    with raises_code("timeout") as caught:
        extract_bounded(big_markdown(), "big.md", Limits(max_seconds=0.3))
    assert time.monotonic() - started < 2.0
    assert caught.value.message.startswith("Reading this document took longer than 0.3 seconds")
    assert children() == before


def test_bounded_memory_cap_stops_the_parse() -> None:
    capped = Limits(max_memory_bytes=64 * 1024 * 1024)
    before = children()
    with raises_code("too_much_memory"):
        extract_bounded(big_markdown(), "big.md", capped)
    assert children() == before
    # The same cap is enough for an ordinary document: the big one was stopped by its size, not by startup.
    assert extract_bounded(MARKDOWN.encode(), "guide.md", capped) == extract(
        MARKDOWN.encode(), "markdown", LIMITS
    )


def test_bounded_works_inside_a_daemonic_worker_process(policy_pdf: bytes) -> None:
    """Celery prefork tasks run in daemonic processes, which may not start multiprocessing children."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(
        target=bounded_in_subprocess, args=(policy_pdf, "policy.pdf", results), daemon=True
    )
    worker.start()
    try:
        outcome = results.get(timeout=60)
    finally:
        worker.join(timeout=10)
    assert outcome == extract(policy_pdf, "pdf", LIMITS)


def test_ingestion_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(IngestionError("encrypted", "Remove the password.")))  # noqa: S301
    assert (error.code, error.message, str(error)) == (
        "encrypted",
        "Remove the password.",
        "Remove the password.",
    )


def test_worker_runs_without_django() -> None:
    probe = (
        "import sys\n"
        "import apps.knowledge.parsing.worker\n"
        "from apps.knowledge.parsing import pdf, docx, html, markdown, text\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django' or m.startswith('apps.core')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_ROOT)},
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"


def test_worker_rejects_a_malformed_request() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "apps.knowledge.parsing.worker"],
        input=b"not json\n",
        capture_output=True,
        cwd=PROJECT_ROOT,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, b"")
