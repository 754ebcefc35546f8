"""DOCX to blocks. The archive is vetted before python-docx opens it, then the body XML is walked
directly: python-docx's `Paragraph.runs` skips runs inside hyperlinks, insertions and content controls,
and this reader also has to skip hidden runs, deleted text and duplicated fallback content.

Read: body paragraphs, tables (one block, a line per row, cells joined by " | "), text boxes.
Skipped: hidden text (`w:vanish` on the run, its character style or its paragraph style; text of 1 pt
or less; white text with no shading behind it), comments (stored in another part), tracked deletions,
headers, footers and footnotes.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from .cleaning import BlockBuilder, clean_inline
from .document import Extracted, Limits
from .errors import IngestionError, corrupt_error, format_size

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_P, _R, _TBL, _TR, _TC = f"{_W}p", f"{_W}r", f"{_W}tbl", f"{_W}tr", f"{_W}tc"
_VAL = f"{_W}val"
# Runs under these are not shown: deleted or moved-away text, the legacy copy of a drawing, and text
# boxes (read separately, once, from their preferred representation).
_SKIPPED_RUN_PARENTS = frozenset({f"{_W}del", f"{_W}moveFrom", f"{_MC}Fallback", f"{_W}txbxContent"})
_CONTAINERS = frozenset(
    {f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}ins", f"{_MC}AlternateContent", f"{_MC}Choice"}
)
_HEADING_NAME = re.compile(r"^heading\s*([1-9])$")
# Deflated XML of real documents compresses up to ~40:1; bombs reach 1000:1.
_MAX_RATIO = 200
_RATIO_MIN_SIZE = 1024 * 1024
_TINY_HALF_POINTS = 2  # w:sz is in half-points: 1 pt or less is unreadable on purpose
_MAX_STYLE_DEPTH = 32
_WHITE = frozenset({"FFFFFF", "WHITE"})


def check_archive(data: bytes, limits: Limits) -> None:
    """Rejects zip bombs from the central directory alone. Declared sizes can lie, but `zipfile` stops
    inflating at the declared size (and then fails the CRC), so they bound what opening can allocate."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise corrupt_error("This Word file") from exc
    if len(entries) > limits.max_parts:
        raise IngestionError(
            "too_complex",
            f"This Word file is made of {len(entries):,} parts; the limit is {limits.max_parts:,}. "
            "Save it again from Word, or as PDF, and upload the new file.",
        )
    total = sum(entry.file_size for entry in entries)
    if total > limits.max_uncompressed_bytes:
        raise IngestionError(
            "too_complex",
            f"This Word file expands to {format_size(total)} when opened; the limit is "
            f"{format_size(limits.max_uncompressed_bytes)}. Remove large images or split the document.",
        )
    for entry in entries:
        if entry.file_size > _RATIO_MIN_SIZE and entry.file_size > _MAX_RATIO * max(entry.compress_size, 1):
            raise IngestionError(
                "too_complex",
                "This Word file is compressed far more than real documents are (a zip bomb pattern), so "
                "it was not opened. Save it again from Word and upload the new file.",
            )


def extract_docx(data: bytes, limits: Limits) -> Extracted:
    check_archive(data, limits)
    import docx as python_docx

    try:
        document = python_docx.Document(io.BytesIO(data))
        styles = _Styles(document.styles.element)
        core_title = document.core_properties.title or ""
    except (MemoryError, RecursionError):
        raise
    except ValueError as exc:
        if "content type" in str(exc):
            raise IngestionError(
                "unsupported_type",
                "This is a macro-enabled or template Word file. Save it as a Word document (DOCX) or PDF "
                "and upload that instead.",
            ) from exc
        raise corrupt_error("This Word file") from exc
    except Exception as exc:
        raise corrupt_error("This Word file") from exc
    builder = BlockBuilder(limits)
    title_paragraph = ""
    for element in _body_items(document.element.body):
        if element.tag == _TBL:
            builder.add(_table_text(element, styles), keep_newlines=True)
            continue
        text = _paragraph_text(element, styles)
        level = styles.heading_level(element)
        if level == 0:
            title_paragraph = title_paragraph or clean_inline(text)
        elif level is not None:
            builder.heading(level, text)
        else:
            builder.add(text)
        for box_text in _text_boxes(element, styles):
            builder.add(box_text)
    title = title_paragraph or core_title or builder.first_headings.get(1, "")
    return builder.finish(kind="docx", title=title)


def _body_items(container: Any) -> Iterator[Any]:
    for child in container:
        if child.tag in (_P, _TBL):
            yield child
        elif child.tag in _CONTAINERS:
            yield from _body_items(child)


def _on(element: Any) -> bool | None:
    """OOXML on/off property: present means on unless w:val says otherwise; absent means inherit."""
    if element is None:
        return None
    return element.get(_VAL, "true").lower() not in ("0", "false", "off")


class _Styles:
    def __init__(self, styles_element: Any) -> None:
        self._by_id: dict[str, Any] = {}
        self._default_paragraph: str | None = None
        for style in styles_element.iterchildren(f"{_W}style"):
            style_id = style.get(f"{_W}styleId")
            if style_id is None:
                continue
            self._by_id[style_id] = style
            if style.get(f"{_W}type") == "paragraph" and style.get(f"{_W}default") in ("1", "true", "on"):
                self._default_paragraph = style_id

    def _chain(self, style_id: str | None) -> Iterator[Any]:
        seen: set[str] = set()
        while style_id and style_id not in seen and len(seen) < _MAX_STYLE_DEPTH:
            seen.add(style_id)
            style = self._by_id.get(style_id)
            if style is None:
                return
            yield style
            based_on = style.find(f"{_W}basedOn")
            style_id = based_on.get(_VAL) if based_on is not None else None

    def paragraph_style(self, paragraph: Any) -> str | None:
        style = paragraph.find(f"{_W}pPr/{_W}pStyle")
        return style.get(_VAL) if style is not None else self._default_paragraph

    def heading_level(self, paragraph: Any) -> int | None:
        """1-9 for headings, 0 for the Title style, None for body text."""
        for style in self._chain(self.paragraph_style(paragraph)):
            name_element = style.find(f"{_W}name")
            name = (name_element.get(_VAL, "") if name_element is not None else "").strip().lower()
            if name == "title":
                return 0
            match = _HEADING_NAME.match(name)
            if match:
                return int(match.group(1))
        # Custom heading styles that are not based on "Heading N" still carry an outline level.
        for source in (paragraph, *self._chain(self.paragraph_style(paragraph))):
            outline = source.find(f"{_W}pPr/{_W}outlineLvl")
            if outline is not None:
                value = outline.get(_VAL, "")
                # Level 9 is Word's explicit "body text".
                return int(value) + 1 if value.isdigit() and int(value) < 9 else None
        return None

    def hidden(self, style_id: str | None) -> bool | None:
        for style in self._chain(style_id):
            value = _on(style.find(f"{_W}rPr/{_W}vanish"))
            if value is not None:
                return value
        return None


def _white_on_page(properties: Any, run: Any) -> bool:
    """White text with nothing behind it (no highlight or shading on the run, its paragraph or its table
    cell) is invisible on the page: the classic way to hide instructions in a document."""
    color = properties.find(f"{_W}color")
    if color is None or color.get(_VAL, "").upper() not in _WHITE:
        return False
    if properties.find(f"{_W}highlight") is not None or _shaded(properties.find(f"{_W}shd")):
        return False
    parent = run.getparent()
    while parent is not None:
        if parent.tag == _P and _shaded(parent.find(f"{_W}pPr/{_W}shd")):
            return False
        if parent.tag == _TC and _shaded(parent.find(f"{_W}tcPr/{_W}shd")):
            return False
        parent = parent.getparent()
    return True


def _shaded(shading: Any) -> bool:
    return shading is not None and shading.get(f"{_W}fill", "auto").upper() not in ("AUTO", *_WHITE)


def _run_hidden(run: Any, paragraph_style: str | None, styles: _Styles) -> bool:
    properties = run.find(f"{_W}rPr")
    if properties is not None:
        direct = _on(properties.find(f"{_W}vanish"))
        if direct is not None:
            return direct
        size = properties.find(f"{_W}sz")
        if size is not None and size.get(_VAL, "").isdigit() and int(size.get(_VAL)) <= _TINY_HALF_POINTS:
            return True
        if _white_on_page(properties, run):
            return True
        character_style = properties.find(f"{_W}rStyle")
        if character_style is not None:
            inherited = styles.hidden(character_style.get(_VAL))
            if inherited is not None:
                return inherited
    return bool(styles.hidden(paragraph_style))


def _run_text(run: Any) -> str:
    parts: list[str] = []
    for child in run:
        tag = child.tag
        if tag == f"{_W}t":
            parts.append(child.text or "")
        elif tag in (f"{_W}tab", f"{_W}ptab", f"{_W}br", f"{_W}cr"):
            parts.append(" ")
        elif tag == f"{_W}noBreakHyphen":
            parts.append("-")
    return "".join(parts)


def _shown(node: Any, top: Any) -> bool:
    parent = node.getparent()
    while parent is not None and parent is not top:
        if parent.tag in _SKIPPED_RUN_PARENTS:
            return False
        parent = parent.getparent()
    return True


def _paragraph_text(paragraph: Any, styles: _Styles) -> str:
    paragraph_style = styles.paragraph_style(paragraph)
    return "".join(
        _run_text(run)
        for run in paragraph.iter(_R)
        if _shown(run, paragraph) and not _run_hidden(run, paragraph_style, styles)
    )


def _text_boxes(paragraph: Any, styles: _Styles) -> Iterator[str]:
    for box in paragraph.iter(f"{_W}txbxContent"):
        if not _shown(box, paragraph):
            continue
        for inner in box.iter(_P):
            yield _paragraph_text(inner, styles)


def _table_text(table: Any, styles: _Styles) -> str:
    rows: list[str] = []
    for row in table.iter(_TR):
        if _nearest(row, _TBL) is not table:
            continue  # a nested table is read as part of its cell
        cells: list[str] = []
        for cell in row.iter(_TC):
            if _nearest(cell, _TR) is not row:
                continue
            merge = cell.find(f"{_W}tcPr/{_W}vMerge")
            if merge is not None and merge.get(_VAL) != "restart":
                cells.append("")  # continuation of a vertically merged cell: its text is above
                continue
            text = " ".join(_paragraph_text(p, styles) for p in cell.iter(_P) if _shown(p, cell))
            cells.append(clean_inline(text))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _nearest(element: Any, tag: str) -> Any:
    parent = element.getparent()
    while parent is not None and parent.tag != tag:
        parent = parent.getparent()
    return parent
