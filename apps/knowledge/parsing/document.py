"""The values extraction produces, the limits it runs under, and their JSON form for the worker pipe.

JSON rather than pickle crosses the pipe: the worker parses untrusted files, and unpickling its output in
the Celery process would turn any compromise of a C parser into code execution there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import IngestionError, corrupt_error, format_size


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_seconds: float = 60.0
    max_memory_bytes: int = 1024 * 1024 * 1024
    max_pages: int = 2000
    max_uncompressed_bytes: int = 100 * 1024 * 1024
    max_chars: int = 5_000_000
    # Ordinary DOCX files hold a few dozen parts; thousands means a crafted archive.
    max_parts: int = 5000

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> Limits:
        if not isinstance(raw, dict):
            raise ValueError("limits must be an object")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in raw.items() if key in known}
        for key, value in values.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {key} must be a positive number")
        return cls(**values)


@dataclass(frozen=True)
class Block:
    """A paragraph-ish unit of text in reading order."""

    text: str
    section_path: tuple[str, ...]
    page: int | None
    # Counts headings seen so far, so two neighbouring sections with the same title never merge.
    section_index: int = 0


@dataclass(frozen=True)
class Extracted:
    kind: str
    title: str
    blocks: list[Block]
    page_count: int | None
    # Things the editor should know that did not stop the import, e.g. a PDF page that could not be read.
    warnings: tuple[str, ...] = field(default=())


def check_size(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_bytes:
        raise IngestionError(
            "too_large",
            f"This file is {format_size(len(data))}; the limit is {format_size(limits.max_bytes)}. "
            "Split it or compress its images.",
        )


def extracted_to_json(extracted: Extracted) -> dict[str, Any]:
    return {
        "kind": extracted.kind,
        "title": extracted.title,
        "page_count": extracted.page_count,
        "warnings": list(extracted.warnings),
        "blocks": [[b.text, list(b.section_path), b.page, b.section_index] for b in extracted.blocks],
    }


def extracted_from_json(raw: Any) -> Extracted:
    """Rebuilds the worker's answer, checking every type: a malformed reply is a failed parse."""
    try:
        kind, title, page_count = raw["kind"], raw["title"], raw["page_count"]
        warnings, rows = raw["warnings"], raw["blocks"]
        if not isinstance(kind, str) or not isinstance(title, str) or not _is_opt_int(page_count):
            raise TypeError("bad header")
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise TypeError("bad warnings")
        if not isinstance(rows, list):
            raise TypeError("bad blocks")
        blocks = [_block_from_json(row) for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise corrupt_error() from exc
    return Extracted(kind=kind, title=title, blocks=blocks, page_count=page_count, warnings=tuple(warnings))


def _block_from_json(row: Any) -> Block:
    text, path, page, section_index = row
    if not isinstance(text, str) or not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise TypeError("bad block")
    if not _is_opt_int(page) or not isinstance(section_index, int):
        raise TypeError("bad block")
    return Block(text=text, section_path=tuple(path), page=page, section_index=section_index)


def _is_opt_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))
