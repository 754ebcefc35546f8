"""Decides what a file is from its bytes; the filename only tells Markdown from plain text (and an HTML
fragment from text), because an upload's extension is whatever the sender typed."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePath

from .errors import IngestionError, corrupt_error

KINDS = ("pdf", "docx", "html", "markdown", "text")

_MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdown", ".mkd", ".mkdn"}
_HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Only signatures long enough not to start ordinary text; anything else binary is caught by the text test.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x7fELF", "a program (an ELF executable)"),
    (b"\x1f\x8b", "a compressed (gzip) archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xca\xfe\xba\xbe", "a program"),
    (b"%!PS", "a PostScript file"),
)
_RTF = b"{\\rtf"
_GENERIC_ADVICE = "Upload a PDF, Word (DOCX), HTML, Markdown or plain-text document instead."
_HTML_START = re.compile(r"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL)
_HTML_TAGS = re.compile(r"<(?:html|head|body)[\s>]", re.IGNORECASE)
_TAG_START = re.compile(r"\s*<[a-zA-Z!]")
_XML_DECL = re.compile(r"\A\s*<\?xml[^>]*\?>")


def sniff(data: bytes, filename: str) -> str:
    """Returns one of KINDS or raises IngestionError (unsupported_type, encrypted, corrupt, empty)."""
    if not data.strip():
        raise IngestionError(
            "empty", "The file is empty. Check that you picked the right file and upload it again."
        )
    head = data[:1024]
    if head.lstrip(b"\xef\xbb\xbf \t\r\n\x00").startswith(b"%PDF-") or (
        b"%PDF-" in head and b"%%EOF" in data[-4096:]
    ):
        return "pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data)
    if data.startswith(_OLE_MAGIC):
        raise _ole_error(data)
    if data.startswith(_RTF):
        raise _unsupported(
            "an RTF document", "Open it in Word and save it as DOCX or PDF, then upload it again."
        )
    for signature, description in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise _unsupported(f"{description}, not a document we can read")
    if data[4:8] == b"ftyp" or (data.startswith(b"RIFF") and data[8:12] in (b"WEBP", b"AVI ", b"WAVE")):
        raise _unsupported("an image, audio or video file, not a document we can read")
    text = decode_text(data)
    if text is None:
        raise _unsupported("not a document we can read")
    return _sniff_text(text, filename)


def decode_text(data: bytes) -> str | None:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252, which is what most non-UTF-8
    text files written on Windows are; None when the bytes do not look like text at all."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates: tuple[str, ...] = ("utf-16",)
    else:
        candidates = ("utf-8-sig", "cp1252")
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text if _looks_like_text(text) else None
    return None


def strip_xml_declaration(text: str) -> str:
    """lxml refuses str input that declares an encoding; the text is already decoded."""
    return _XML_DECL.sub("", text, count=1)


def _looks_like_text(text: str) -> bool:
    if "\x00" in text:
        return False
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f")
    return controls <= len(sample) // 100


def _sniff_text(text: str, filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    start = strip_xml_declaration(text[:4096])
    if _HTML_START.match(start):
        return "html"
    # Markup-first files are HTML when they have a document skeleton or say they are HTML; prose that
    # mentions <body> further in, or Markdown with inline HTML, is not.
    if _TAG_START.match(start) and (
        suffix in _HTML_EXTENSIONS or (suffix not in _MARKDOWN_EXTENSIONS and _HTML_TAGS.search(start))
    ):
        return "html"
    if suffix in _MARKDOWN_EXTENSIONS:
        return "markdown"
    return "text"


def _sniff_zip(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise corrupt_error("This file looks like a Word (DOCX) or other ZIP-based file, but it") from exc
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        raise _unsupported("an Excel workbook", "Save the sheet you need as PDF and upload that instead.")
    if "ppt/presentation.xml" in names:
        raise _unsupported("a PowerPoint presentation", "Save it as PDF and upload that instead.")
    if "content.xml" in names and "mimetype" in names:
        raise _unsupported(
            "an OpenDocument file", "Open it and save it as DOCX or PDF, then upload it again."
        )
    raise _unsupported("a ZIP archive, not a Word document", "Unzip it and upload the documents inside.")


def _ole_error(data: bytes) -> IngestionError:
    # Password-protected DOCX files are stored inside an OLE container next to an "EncryptedPackage".
    if "EncryptedPackage".encode("utf-16-le") in data:
        return IngestionError(
            "encrypted",
            "This Office file is password-protected. Remove the password in Word (File, Info, Protect "
            "Document) and upload it again.",
        )
    return _unsupported(
        "an older Word (.doc) or Office file",
        "Open it in Word and save it as DOCX or PDF, then upload it again.",
    )


def _unsupported(what: str, advice: str = _GENERIC_ADVICE) -> IngestionError:
    return IngestionError("unsupported_type", f"This file is {what}. {advice}")
