"""In-process extraction. Parser modules are imported on first use so the worker starts fast and only
loads the library the file needs."""

from __future__ import annotations

from collections.abc import Callable

from .document import Extracted, Limits, check_size
from .errors import nested_too_deeply_error
from .sniff import KINDS, sniff

Extractor = Callable[[bytes, Limits], Extracted]


def _extractor(kind: str) -> Extractor:
    if kind == "pdf":
        from .pdf import extract_pdf

        return extract_pdf
    if kind == "docx":
        from .docx import extract_docx

        return extract_docx
    if kind == "html":
        from .html import extract_html

        return extract_html
    if kind == "markdown":
        from .markdown import extract_markdown

        return extract_markdown
    from .text import extract_text

    return extract_text


def extract(data: bytes, kind: str, limits: Limits) -> Extracted:
    """Extracts `data`, already identified as `kind`, in this process: no time or memory bound, so
    untrusted uploads go through `extract_bounded`. Raises IngestionError."""
    if kind not in KINDS:
        raise ValueError(f"unknown document kind {kind!r}; expected one of {KINDS}")
    check_size(data, limits)
    try:
        return _extractor(kind)(data, limits)
    except RecursionError as exc:
        raise nested_too_deeply_error() from exc


def extract_file(data: bytes, filename: str, limits: Limits) -> Extracted:
    """Size check, sniff and extract: what the bounded worker runs."""
    check_size(data, limits)
    return extract(data, sniff(data, filename), limits)
