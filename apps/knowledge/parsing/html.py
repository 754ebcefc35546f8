"""HTML to blocks: hidden content removed first, then h1-h6 build the section path.

Markdown reuses `html_into_builder`, so an HTML block inside a Markdown file is judged exactly as a web
page would be.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from .cleaning import BlockBuilder, clean_inline
from .css import Selector, hides, hiding_selectors
from .document import Extracted, Limits
from .errors import IngestionError, nested_too_deeply_error
from .sniff import decode_text, strip_xml_declaration

# Never reader-visible text: code, embedded objects, form controls, and <head> (its <title> is read first).
_DROPPED_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "head", "canvas",
        "frame", "frameset", "applet", "audio", "video", "button", "select", "option", "input",
        "textarea", "link", "meta", "base", "param", "source", "track",
    }
)  # fmt: skip
# Void in HTML5 but parsed by libxml2 as containers of whatever follows them: remove the tag, keep the rest.
_MISPARSED_VOIDS = frozenset({"embed", "source", "track", "keygen"})
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LISTS = frozenset({"ul", "ol", "menu"})
_BLOCKS = frozenset(
    {
        "html", "body", "p", "div", "section", "article", "main", "header", "footer", "aside", "nav",
        "blockquote", "address", "figure", "figcaption", "dl", "dt", "dd", "form", "fieldset", "legend",
        "details", "summary", "center", "hr", "li", "tr", "td", "th", "caption", "hgroup", "search",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})
# Characters libxml2 cannot hold in a tree (lxml refuses them when text is moved while removing hidden
# elements); browsers do not display them either.
_UNSTORABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffe\uffff]")
_VERTICAL_SPACE = re.compile("[\x0b\x0c]")


def extract_html(data: bytes, limits: Limits) -> Extracted:
    text = decode_text(data)
    if text is None:
        raise IngestionError(
            "unsupported_type", "This file is not readable text, so it cannot be read as HTML."
        )
    builder = BlockBuilder(limits)
    title = html_into_builder(builder, text)
    return builder.finish(kind="html", title=title or builder.first_headings.get(1, ""))


def html_into_builder(builder: BlockBuilder, markup: str) -> str:
    """Adds the visible text of `markup` to `builder`; returns the <title> text ("" if none)."""
    markup = _VERTICAL_SPACE.sub(" ", _UNSTORABLE.sub("", strip_xml_declaration(markup)))
    if not markup.strip():
        return ""
    parser = lxml_html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
    try:
        root = lxml_html.document_fromstring(markup, parser=parser)
    except (etree.ParserError, ValueError):
        return ""
    # libxml2 stops descending past 256 levels (or past a 10 MB text node) and silently drops the rest.
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        raise nested_too_deeply_error()
    title_element = root.find("head/title")
    title = clean_inline(title_element.text_content()) if title_element is not None else ""
    _remove_invisible(root)
    walker = _Walker(builder)
    walker.walk(root)
    walker.finish()
    return title


def _remove_invisible(root: Any) -> None:
    selectors = [
        selector for style in root.iter("style") for selector in hiding_selectors(style.text_content() or "")
    ]
    doomed = [element for element in root.iter() if _is_invisible(element, selectors)]
    for element in doomed:
        if element is root:
            root.clear()
        elif element.getparent() is None:
            continue
        elif _tag(element) in _MISPARSED_VOIDS:
            element.drop_tag()
        else:
            element.drop_tree()  # keeps the element's tail, which belongs to the parent


def _is_invisible(element: Any, selectors: list[Selector]) -> bool:
    if not isinstance(element.tag, str):  # comments, processing instructions, entities
        return True
    tag = element.tag.lower()
    if tag in _DROPPED_TAGS:
        return True
    attrib = element.attrib
    if "hidden" in attrib or attrib.get("aria-hidden", "").strip().lower() == "true":
        return True
    if hides(attrib.get("style", "")):
        return True
    if not selectors:
        return False
    classes = set(attrib.get("class", "").split())
    element_id = attrib.get("id")
    return any(selector.matches(tag, classes, element_id) for selector in selectors)


def _tag(element: Any) -> str:
    return element.tag.lower() if isinstance(element.tag, str) else ""


def inline_text(element: Any) -> str:
    """All text under `element` on one line; breaks and block children become spaces, not nothing."""
    parts: list[str] = []

    def visit(node: Any) -> None:
        parts.append(node.text or "")
        for child in node:
            tag = _tag(child)
            if tag == "br" or tag in _BLOCKS or tag in _LISTS or tag in _HEADINGS or tag == "table":
                parts.append(" ")
                visit(child)
                parts.append(" ")
            else:
                visit(child)
            parts.append(child.tail or "")

    visit(element)
    return clean_inline("".join(parts))


class _Walker:
    def __init__(self, builder: BlockBuilder) -> None:
        self._builder = builder
        self._buffer: list[str] = []
        self._prefix = ""

    def walk(self, element: Any) -> None:
        tag = _tag(element)
        if tag in _HEADINGS:
            self._flush()
            self._builder.heading(_HEADINGS[tag], inline_text(element))
        elif tag == "pre":
            self._flush()
            self._builder.add(element.text_content(), keep_newlines=True)
        elif tag == "table":
            self._flush()
            self._table(element)
        elif tag in _LISTS:
            self._flush()
            self._list(element, ordered=tag == "ol")
        elif tag == "br":
            self._buffer.append("\n")
        elif tag in _BLOCKS:
            self._flush()
            self._inner(element)
            self._flush()
        else:
            self._inner(element)

    def finish(self) -> None:
        self._flush()

    def _inner(self, element: Any) -> None:
        if element.text:
            self._buffer.append(element.text)
        for child in element:
            self.walk(child)
            if child.tail:
                self._buffer.append(child.tail)

    def _flush(self) -> None:
        text = "".join(self._buffer)
        self._buffer.clear()
        if text.strip():
            # The list marker goes on the item's first block, which may be a <p> inside the <li>.
            self._builder.add(self._prefix + text)
            self._prefix = ""

    def _list(self, element: Any, *, ordered: bool) -> None:
        number = _start_number(element)
        for child in element:
            if _tag(child) == "li":
                self._flush()
                self._prefix = f"{number}. " if ordered else "- "
                number += 1
                self._inner(child)
                self._flush()
                self._prefix = ""
            else:
                self.walk(child)
            if child.tail and child.tail.strip():
                self._buffer.append(child.tail)
        self._flush()

    def _table(self, table: Any) -> None:
        caption = table.find("caption")
        if caption is not None:
            self._builder.add(inline_text(caption))
        rows: list[str] = []
        for row in table.iter("tr"):
            if _nearest_table(row) is not table:
                continue  # rows of a nested table are read as part of their cell
            cells = [inline_text(cell) for cell in row if _tag(cell) in _CELLS]
            if any(cells):
                rows.append(" | ".join(cells))
        if rows:
            self._builder.add("\n".join(rows), keep_newlines=True)


def _nearest_table(element: Any) -> Any:
    parent = element.getparent()
    while parent is not None and _tag(parent) != "table":
        parent = parent.getparent()
    return parent


def _start_number(element: Any) -> int:
    try:
        return int(element.get("start", "1"))
    except ValueError:
        return 1
