"""Plain text: paragraphs are separated by blank lines; a line underlined with === or --- is a heading
(level 1 or 2, as in Markdown's setext headings), since that is how plain-text policies mark sections."""

from __future__ import annotations

import re

from .cleaning import BlockBuilder
from .document import Extracted, Limits
from .errors import IngestionError
from .sniff import decode_text

_UNDERLINE = re.compile(r"^\s*(=+|-+)\s*$")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n")


def extract_text(data: bytes, limits: Limits) -> Extracted:
    text = decode_text(data)
    if text is None:
        raise IngestionError("unsupported_type", "This file is not readable text.")
    builder = BlockBuilder(limits)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for paragraph in _PARAGRAPH_BREAK.split(text):
        _add_paragraph(builder, paragraph.split("\n"))
    return builder.finish(kind="text", title=builder.first_headings.get(1, ""))


def _add_paragraph(builder: BlockBuilder, lines: list[str]) -> None:
    body: list[str] = []
    for line in lines:
        underline = _UNDERLINE.match(line)
        if underline and len(underline.group(1)) >= 3 and body and _could_be_heading(body[-1]):
            heading = body.pop()
            if body:
                builder.add(" ".join(body))
            body = []
            builder.heading(1 if underline.group(1)[0] == "=" else 2, heading)
        else:
            body.append(line)
    if body:
        builder.add(" ".join(body))


def _could_be_heading(line: str) -> bool:
    # A rule under a long sentence is a separator, not an underline.
    stripped = line.strip()
    return 0 < len(stripped) <= 100 and not stripped.endswith((".", ",", ";"))
