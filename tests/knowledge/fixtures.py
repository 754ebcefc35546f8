"""Builders for the document fixtures of the parsing tests, all made in memory from code.

Body text comes from `prose()`: deterministic, distinct sentences, so that no two paragraphs repeat and
running-header detection is tested against text that looks like a real policy rather than copy-paste.
"""

from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass, field
from typing import Any

_SUBJECTS = ["Customers", "Account holders", "Members", "Subscribers", "Buyers", "Business clients"]
_VERBS = ["may request", "are entitled to", "can ask for", "will receive", "must apply for", "should expect"]
_OBJECTS = [
    "a full refund",
    "a partial credit",
    "a replacement item",
    "a written confirmation",
    "a payment extension",
    "an itemised invoice",
]
_CONDITIONS = [
    "within thirty days of purchase",
    "after the billing cycle closes",
    "when the order arrives damaged",
    "if the subscription renews unexpectedly",
    "once the return is inspected",
    "unless the item was personalised",
]


def prose(seed: int, sentences: int) -> str:
    rng = random.Random(seed)
    parts = []
    for index in range(sentences):
        parts.append(
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_CONDITIONS)} under clause {seed}.{index}."
        )
    return " ".join(parts)


@dataclass
class PdfPage:
    """("h", "2.3 Title") draws a heading line, ("p", text) a wrapped paragraph."""

    items: list[tuple[str, str]] = field(default_factory=list)


def build_pdf(
    pages: list[PdfPage],
    *,
    title: str | None = "Refund Policy",
    header: str | None = "Acme Support Handbook",
    footer: str | None = "Acme Corp - Confidential",
    outline: dict[str, int] | None = None,
    first_numbered_page: int = 1,
) -> bytes:
    """`outline` maps heading texts to bookmark levels (0 = top); headings not in it get no bookmark."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    if title:
        pdf.setTitle(title)
    width, height = A4
    for number, page in enumerate(pages, start=1):
        if header:
            pdf.setFont("Helvetica", 9)
            pdf.drawString(72, height - 40, header)
        y = height - 80
        for kind, text in page.items:
            if kind == "h":
                if outline and text in outline:
                    key = f"h{number}-{y}"
                    pdf.bookmarkPage(key)
                    pdf.addOutlineEntry(text, key, level=outline[text])
                pdf.setFont("Helvetica-Bold", 14)
                pdf.drawString(72, y, text)
                y -= 24
            else:
                pdf.setFont("Helvetica", 11)
                for line in simpleSplit(text, "Helvetica", 11, width - 144):
                    pdf.drawString(72, y, line)
                    y -= 14
                y -= 10
            assert y > 60, "fixture page overflows; use fewer items per page"
        if footer and number >= first_numbered_page:
            printed = number - first_numbered_page + 1
            pdf.setFont("Helvetica", 9)
            pdf.drawString(72, 40, f"{footer}    Page {printed} of {len(pages) - first_numbered_page + 1}")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def encrypt_pdf(data: bytes, *, user_password: str, owner_password: str = "owner-pw") -> bytes:  # noqa: S107
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(document: object) -> bytes:
    out = io.BytesIO()
    document.save(out)  # type: ignore[attr-defined]
    return out.getvalue()


def zip_bomb_docx(*, uncompressed_bytes: int) -> bytes:
    """A ZIP named like a DOCX whose word/document.xml inflates to `uncompressed_bytes` of zeros.

    Written in 1 MiB slices so building it never holds the inflated size in memory."""
    out = io.BytesIO()
    slice_ = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            remaining = uncompressed_bytes
            while remaining > 0:
                member.write(slice_[: min(remaining, len(slice_))])
                remaining -= len(slice_)
    return out.getvalue()


def zip_with(names: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in names.items():
            archive.writestr(name, content)
    return out.getvalue()


PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
    b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND"
    b"\xaeB`\x82"
)
ELF_BYTES = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + bytes(range(256)) * 4
OLE_DOC_BYTES = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + b"WordDocument".ljust(512, b"\x00")


def bounded_in_subprocess(data: bytes, filename: str, results: Any) -> None:
    """Target of a daemonic multiprocessing child (importable, as the spawn start method requires)."""
    from apps.knowledge.parsing import extract_bounded

    results.put(extract_bounded(data, filename))
