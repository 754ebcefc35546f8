"""PDF to blocks with pypdf: text page by page, page numbers kept, running headers and footers removed,
and headings found as well as a PDF allows (best effort; PDFs carry no reliable structure).

When the PDF has an outline (bookmarks; Word and most office suites export their headings as one), a
line is a heading exactly when it matches an outline title (ignoring case, spacing and punctuation), at
the outline's depth. Otherwise headings are guessed from the text alone:

- numbered lines such as "2." or "2.3 Late payments" (a capitalised title, at most 12 words, no final
  full stop) are headings whose depth is the count of numbers;
- short ALL-CAPS lines are headings one level below the current numbered heading;
- short Title Case lines followed by a longer line are headings below that.

Paragraphs are rebuilt from lines: a line ends a paragraph when it ends a sentence and stops well short
of the typical line width, or is much shorter than it; bullets start a new one; words hyphenated across
lines are rejoined. Lines that recur in the same place at the top or bottom of more than half of the
pages are running headers or footers and are dropped; a number in them may count pages ("Page 3 of 9").
Multi-column layouts are read in pypdf's order, which may interleave columns.
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from typing import Any

from .cleaning import BlockBuilder, clean_inline
from .document import Extracted, Limits
from .errors import IngestionError, corrupt_error

_NUMBERED = re.compile(r"^(?P<number>\d{1,2}(?:\.\d{1,3}){0,5})\.?\s+(?P<title>\S.*)$")
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?$", re.IGNORECASE)
_DASHES = "\u2013\u2014"
_BULLET_SIGNS = f"\u2022\u25aa\u25e6\u2023\u25cf\u25cb\u25a0\u25a1{_DASHES}*-"
_BULLET = re.compile(rf"^(?:[{_BULLET_SIGNS}]|\(?(?:\d{{1,3}}|[a-z]|[ivx]{{1,4}})[.)])\s")
_DIGITS = re.compile(r"\d+")
_SMALL_WORDS = frozenset(
    {"a", "an", "the", "and", "or", "nor", "but", "of", "for", "to", "in", "on", "at", "by", "with", "from"}
    | {"as", "per", "via", "vs", "into", "onto", "over", "under"}
)
_WORD_PUNCTUATION = f"()[]\"'\u201c\u201d\u2018\u2019-{_DASHES}&/"
_SENTENCE_END = (".", "!", "?", ":", ";", '."', ".”", ".)", "…")
_NOT_A_HEADING_END = (".", ",", ";", ":")
_MAX_NUMBERS = 4
_MARGIN_LINES = 2  # how deep into the top and bottom of a page running headers/footers are looked for
_MIN_OUTLINE_ENTRIES = 2
_MAX_OUTLINE_ENTRIES = 10_000
_CAPS_LEVEL = 7  # below any numbered heading (at most 6 numbers deep)
_TITLE_CASE_LEVEL = 8
# Titles that producers fill in by themselves, which say nothing about the document.
_PLACEHOLDER_TITLE = re.compile(
    r"^(?:untitled|document\s*\d*|title|.*\.(?:docx?|pdf|rtf|odt|pages))$", re.IGNORECASE
)


def extract_pdf(data: bytes, limits: Limits) -> Extracted:
    if b"%%EOF" not in data[-4096:]:
        raise IngestionError(
            "corrupt",
            "This PDF is incomplete (it may have been cut off while downloading or copying). Get a "
            "complete copy of the file and upload it again.",
        )
    reader, page_count = _open(data)
    if page_count > limits.max_pages:
        raise IngestionError(
            "too_complex",
            f"This PDF has {page_count:,} pages; the limit is {limits.max_pages:,}. "
            "Split it into smaller documents and upload them separately.",
        )
    outline = _outline_levels(reader)
    texts, unreadable = _page_texts(reader, page_count)
    if page_count and len(unreadable) == page_count:
        raise corrupt_error("This PDF")
    pages = [[clean_inline(line) for line in text.split("\n")] for text in texts]
    running = _running_lines(pages)
    full = _typical_line_length(pages)
    builder = BlockBuilder(limits)
    builder.warnings.extend(f"Page {number} could not be read and was left out." for number in unreadable)
    for index, lines in enumerate(pages):
        _read_page(builder, _without_margins(lines, index, running), index + 1, full, outline)
    headings = builder.first_headings
    title = _metadata_title(reader) or (headings[min(headings)] if headings else "")
    return builder.finish(kind="pdf", title=title, page_count=page_count)


def _open(data: bytes) -> tuple[Any, int]:
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only to restrict printing, with an empty user password.
            try:
                unlocked = reader.decrypt("") != PasswordType.NOT_DECRYPTED
            except MemoryError:
                raise
            except Exception:  # unsupported algorithm or missing crypto backend: we cannot read it
                unlocked = False
            if not unlocked:
                raise IngestionError(
                    "encrypted", "This PDF is password-protected. Remove the password and upload it again."
                )
        return reader, len(reader.pages)
    except (IngestionError, RecursionError, MemoryError):
        raise
    except Exception as exc:
        raise corrupt_error("This PDF") from exc


def _page_texts(reader: Any, page_count: int) -> tuple[list[str], list[int]]:
    from pypdf.errors import LimitReachedError

    texts: list[str] = []
    unreadable: list[int] = []
    for index in range(page_count):
        try:
            texts.append(reader.pages[index].extract_text() or "")
        except LimitReachedError as exc:
            raise IngestionError(
                "too_complex",
                f"Page {index + 1} of this PDF holds more data than we accept. Save it again with "
                "smaller images, or split it, and upload the new file.",
            ) from exc
        except (RecursionError, MemoryError):
            raise
        except Exception:
            # One broken page should not lose the rest; the editor is told which page is missing.
            texts.append("")
            unreadable.append(index + 1)
    return texts, unreadable


def _outline_key(title: str) -> str:
    return "".join(ch for ch in title.lower() if ch.isalnum())


def _outline_levels(reader: Any) -> dict[str, int]:
    """Outline titles (as `_outline_key`) to heading levels; empty when the outline is missing, broken,
    or too small to be the document's heading structure."""
    levels: dict[str, int] = {}

    def visit(items: list[Any], depth: int) -> None:
        for item in items:
            if len(levels) >= _MAX_OUTLINE_ENTRIES:
                return
            if isinstance(item, list):
                visit(item, depth + 1)
            else:
                key = _outline_key(clean_inline(str(getattr(item, "title", "") or "")))
                if key:
                    levels.setdefault(key, depth + 1)

    try:
        visit(reader.outline, 0)
    except MemoryError:
        raise
    except Exception:  # includes RecursionError: a broken outline only costs us the better headings
        return {}
    return levels if len(levels) >= _MIN_OUTLINE_ENTRIES else {}


def _metadata_title(reader: Any) -> str:
    try:
        metadata = reader.metadata
        raw = str(metadata.title) if metadata is not None and metadata.title else ""
    except MemoryError:
        raise
    except Exception:
        return ""
    title = clean_inline(raw).removeprefix("Microsoft Word - ")
    return "" if _PLACEHOLDER_TITLE.match(title) else title


def _margin_slots(lines: list[str]) -> list[tuple[int, int]]:
    """(index in `lines`, slot) for the first and last few filled lines; slots count from the top (0, 1,
    ..) and from the bottom (-1, -2, ..), since running headers and footers keep their place."""
    filled = [index for index, line in enumerate(lines) if line]
    top = [(index, slot) for slot, index in enumerate(filled[:_MARGIN_LINES])]
    bottom = [(index, -1 - slot) for slot, index in enumerate(reversed(filled[-_MARGIN_LINES:]))]
    return top + bottom


def _signatures(numbers: tuple[int, ...], page: int) -> set[tuple[object, ...]]:
    """What stays the same from page to page on a running line: its numbers as they are (fixed text), or
    with one of them replaced by its distance from the page index (a page number, printed with any
    offset: numbering often starts after a cover). "2. Fees" and "3. Refunds" share neither."""
    signatures: set[tuple[object, ...]] = {numbers}
    for position, number in enumerate(numbers):
        signatures.add((*numbers[:position], ("page", number - page), *numbers[position + 1 :]))
    return signatures


def _running_lines(pages: list[list[str]]) -> set[tuple[int, int]]:
    """(page index, line index) of running headers and footers."""
    if len(pages) < 2:
        return set()
    threshold = max(2, len(pages) // 2 + 1)
    groups: dict[str, list[tuple[int, int, set[tuple[object, ...]]]]] = defaultdict(list)
    for page, lines in enumerate(pages):
        for index, slot in _margin_slots(lines):
            line = lines[index]
            numbers = tuple(int(digits[:9]) for digits in _DIGITS.findall(line)[:_MAX_NUMBERS])
            groups[f"{slot}:{_DIGITS.sub('#', line.lower())}"].append(
                (page, index, _signatures(numbers, page))
            )
    running: set[tuple[int, int]] = set()
    for members in groups.values():
        if len(members) < threshold:
            continue
        counts = Counter(signature for _, _, signatures in members for signature in signatures)
        signature, count = counts.most_common(1)[0]
        if count >= threshold:
            running.update((page, index) for page, index, signatures in members if signature in signatures)
    return running


def _without_margins(lines: list[str], page: int, running: set[tuple[int, int]]) -> list[str]:
    drop = {
        index
        for index, _ in _margin_slots(lines)
        if (page, index) in running or _PAGE_NUMBER.match(lines[index])
    }
    return [line for index, line in enumerate(lines) if index not in drop]


def _typical_line_length(pages: list[list[str]]) -> int:
    lengths = sorted(len(line) for lines in pages for line in lines if line)
    return lengths[int(len(lengths) * 0.8)] if lengths else 0


def _next_filled(lines: list[str], index: int) -> str | None:
    return next((line for line in lines[index + 1 :] if line), None)


def _read_page(
    builder: BlockBuilder, lines: list[str], page: int, full: int, outline: dict[str, int]
) -> None:
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            builder.add(_join(paragraph), page=page)
            paragraph.clear()

    for index, line in enumerate(lines):
        if not line:
            flush()
            continue
        if outline:
            level = outline.get(_outline_key(line)) if len(line) <= 200 else None
            after_sentence = True
        else:
            after_sentence = not paragraph or paragraph[-1].endswith(_SENTENCE_END)
            level = _heading_level(line, _next_filled(lines, index), full, strict=bool(paragraph))
        if level is not None and after_sentence:
            flush()
            builder.heading(level, line)
            continue
        if paragraph and _BULLET.match(line):
            flush()
        paragraph.append(line)
        if _ends_paragraph(line, full):
            flush()
    flush()


def _heading_level(line: str, next_line: str | None, full: int, *, strict: bool) -> int | None:
    """`strict` (the previous line did not clearly end a paragraph) admits only the strong signals."""
    words = line.split()
    if len(line) > 100 or len(words) > 14 or line.endswith(_NOT_A_HEADING_END):
        return None
    if full and len(line) >= 0.85 * full:
        return None
    numbered = _NUMBERED.match(line)
    if numbered:
        title = numbered.group("title")
        if title[0].isupper() and len(title.split()) <= 12:
            return numbered.group("number").count(".") + 1
        return None
    if next_line is None:
        return None  # a heading is followed by its body; the last line of a page is rarely one
    letters = [ch for ch in line if ch.isalpha()]
    if len(letters) >= 3 and all(ch.isupper() for ch in letters):
        return _CAPS_LEVEL
    if not strict and len(words) <= 8 and _is_title_case(words) and len(next_line) > len(line):
        return _TITLE_CASE_LEVEL
    return None


def _is_title_case(words: list[str]) -> bool:
    if not words[0][:1].isupper():
        return False
    seen_word = False
    for word in words:
        core = word.strip(_WORD_PUNCTUATION)
        if not core or not core[0].isalpha():
            continue
        seen_word = True
        if core.lower() not in _SMALL_WORDS and not core[0].isupper():
            return False
    return seen_word


def _ends_paragraph(line: str, full: int) -> bool:
    if not full:
        return True
    if len(line) < 0.6 * full:
        return True
    return line.endswith(_SENTENCE_END) and len(line) < 0.85 * full


def _join(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        if len(text) > 1 and text.endswith("-") and text[-2].isalpha() and line[:1].islower():
            text = text[:-1] + line  # a word hyphenated at the line end
        else:
            text = f"{text} {line}"
    return text
