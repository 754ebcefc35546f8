"""The one exception the parsing package raises for bad input, with a stable code and an actionable sentence.

Defined here rather than in `apps.core.errors` because the bounded worker runs this package in a bare
interpreter without Django; the ingestion service maps these codes onto the product's error hierarchy.
"""

from __future__ import annotations

INGESTION_ERROR_CODES = frozenset(
    {
        "too_large",
        "unsupported_type",
        "encrypted",
        "corrupt",
        "empty",
        "too_complex",
        "timeout",
        "too_much_memory",
    }
)


class IngestionError(Exception):
    """`code` is stable (extend, never rename); `message` is one sentence an editor can act on."""

    def __init__(self, code: str, message: str) -> None:
        if code not in INGESTION_ERROR_CODES:
            raise ValueError(f"unknown ingestion error code {code!r}")
        self.code = code
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[type[IngestionError], tuple[str, str]]:
        # Celery pickles exceptions raised in tasks; the default would call __init__ with one argument.
        return (type(self), (self.code, self.message))

    def __repr__(self) -> str:
        return f"IngestionError({self.code!r}, {self.message!r})"


def format_size(num_bytes: int) -> str:
    """Sizes as editors read them: "31.4 MB", "20 MB", "512 KB" (binary multiples, like file managers)."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if num_bytes >= scale:
            value = f"{num_bytes / scale:.1f}".removesuffix(".0")
            return f"{value} {unit}"
    return f"{num_bytes} bytes"


def corrupt_error(what: str = "This file") -> IngestionError:
    return IngestionError(
        "corrupt",
        f"{what} is damaged and could not be read. Open it in its usual application, save or export it "
        "again, and upload the new file.",
    )


def empty_error() -> IngestionError:
    return IngestionError(
        "empty",
        "The document has no readable text: if it is a scan or a photo, run it through text recognition "
        "(OCR) or export a version with selectable text, then upload it again.",
    )


def too_many_chars_error(chars: int, limit: int) -> IngestionError:
    return IngestionError(
        "too_complex",
        f"This document has more than {limit:,} characters of text (at least {chars:,}). "
        "Split it into smaller documents and upload them separately.",
    )


def timeout_error(seconds: float) -> IngestionError:
    return IngestionError(
        "timeout",
        f"Reading this document took longer than {seconds:g} seconds, so it was stopped. "
        "Split it into smaller documents, or save it again as PDF, and upload it again.",
    )


def memory_error() -> IngestionError:
    return IngestionError(
        "too_much_memory",
        "Reading this document needed more memory than allowed, so it was stopped. Split it into "
        "smaller documents or remove large embedded images, then upload it again.",
    )


def nested_too_deeply_error() -> IngestionError:
    return IngestionError(
        "too_complex",
        "This document is nested too deeply, or has too much text in one piece, to read. Save it again "
        "from its usual application (or as PDF) and upload the new file.",
    )
