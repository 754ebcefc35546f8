"""Markdown to blocks by way of markdown-it's token stream rendered to HTML and read by the HTML reader.

Going through HTML means raw HTML inside the Markdown (a `<div style="display:none">` wrapping Markdown
paragraphs, say) is hidden or shown exactly as a browser rendering the file would, with one set of rules.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from .cleaning import BlockBuilder, clean_inline
from .document import Extracted, Limits
from .errors import IngestionError
from .html import html_into_builder
from .sniff import decode_text

# YAML front matter would otherwise render as a rule and a setext heading made of its keys.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<body>.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(?P<title>.+?)[ \t]*$", re.MULTILINE)


def extract_markdown(data: bytes, limits: Limits) -> Extracted:
    text = decode_text(data)
    if text is None:
        raise IngestionError(
            "unsupported_type", "This file is not readable text, so it cannot be read as Markdown."
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    front_title = ""
    front = _FRONT_MATTER.match(text)
    if front is not None:
        title_match = _FRONT_TITLE.search(front.group("body"))
        if title_match is not None:
            front_title = clean_inline(title_match.group("title").strip("\"'"))
        text = text[front.end() :]
    parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    tokens = parser.parse(text)
    rendered = parser.renderer.render(tokens, parser.options, {})
    builder = BlockBuilder(limits)
    html_title = html_into_builder(builder, rendered)
    return builder.finish(
        kind="markdown", title=front_title or html_title or builder.first_headings.get(1, "")
    )
