"""Document parsing for the knowledge base: sniff an upload, extract its text as structured blocks, and
cut them into chunks. Pure functions with no database or Django; `extract_bounded` is the entry point for
untrusted files. Importing this package loads only the standard library (parsers load on first use)."""

from .bounded import extract_bounded
from .chunking import ChunkDraft, chunk, count_words, estimate_tokens
from .dispatch import extract
from .document import Block, Extracted, Limits
from .errors import INGESTION_ERROR_CODES, IngestionError
from .sniff import KINDS, sniff

__all__ = [
    "INGESTION_ERROR_CODES",
    "KINDS",
    "Block",
    "ChunkDraft",
    "Extracted",
    "IngestionError",
    "Limits",
    "chunk",
    "count_words",
    "estimate_tokens",
    "extract",
    "extract_bounded",
    "sniff",
]
