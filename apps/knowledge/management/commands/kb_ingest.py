"""`manage.py kb_ingest PATH... --tenant SLUG [--publish]`: ingest files and wait, printing JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Tenant
from apps.core.errors import HelpdeskError
from apps.knowledge import services
from apps.knowledge.models import DocumentVersion, VersionStatus

FINAL = {VersionStatus.READY, VersionStatus.FAILED}


class Command(BaseCommand):
    help = "Upload files to a tenant's knowledge base, wait for ingestion, and print the outcome as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", help="files to ingest (PDF, DOCX, HTML, Markdown, text)")
        parser.add_argument("--tenant", required=True, help="the company's slug")
        parser.add_argument("--publish", action="store_true", help="publish each version once it is ready")
        parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for ingestion")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No company with the slug {options['tenant']!r}.")
        started = time.perf_counter()
        versions: list[DocumentVersion] = []
        rejected = []
        for raw in options["paths"]:
            path = Path(raw)
            if not path.is_file():
                rejected.append({"path": raw, "code": "not_found", "message": f"{raw} is not a file."})
                continue
            try:
                versions.append(
                    services.document_upload(
                        tenant=tenant,
                        actor=None,
                        upload=services.Upload(filename=path.name, data=path.read_bytes()),
                    )
                )
            except HelpdeskError as exc:
                rejected.append({"path": raw, **exc.as_payload()})
        deadline = time.monotonic() + options["timeout"]
        pending = {v.id for v in versions}
        while pending and time.monotonic() < deadline:
            done = DocumentVersion.objects.filter(pk__in=pending, status__in=FINAL).values_list(
                "pk", flat=True
            )
            pending -= set(done)
            if pending:
                time.sleep(0.25)
        results = []
        for version in versions:
            version.refresh_from_db()
            published = False
            if options["publish"] and version.status == VersionStatus.READY:
                services.version_publish(version=version, actor=None)
                published = True
            results.append(
                {
                    "document_id": str(version.document_id),
                    "version_id": str(version.id),
                    "version": version.number,
                    "filename": version.filename,
                    "status": version.status if version.id not in pending else "timed_out",
                    "error": {"code": version.error_code, "message": version.error_message}
                    if version.status == VersionStatus.FAILED
                    else None,
                    "chunks": version.chunk_count,
                    "pages": version.page_count,
                    "published": published,
                    "timings": version.timings,
                }
            )
        self.stdout.write(
            json.dumps(
                {
                    "documents": results,
                    "rejected": rejected,
                    "elapsed_s": round(time.perf_counter() - started, 3),
                },
                indent=2,
            )
        )
        if rejected or any(r["status"] != VersionStatus.READY for r in results):
            raise CommandError("Some files were not ingested: see the JSON above.")
