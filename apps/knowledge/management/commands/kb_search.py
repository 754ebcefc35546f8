"""`manage.py kb_search "QUERY" --tenant SLUG [--k 5] --json`: retrieval exactly as the assistant runs it."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Tenant
from apps.core.errors import HelpdeskError
from apps.guardrails.pii import pii_redact
from apps.knowledge.selectors import knowledge_search


class Command(BaseCommand):
    help = "Search a tenant's published knowledge base and print the passages."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("query")
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--mode", choices=["vector", "hybrid", "fulltext"], default="vector")
        parser.add_argument("--json", action="store_true", help="print JSON (the default is a readable list)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No company with the slug {options['tenant']!r}.")
        if not 1 <= options["k"] <= 50:
            raise CommandError("--k must be between 1 and 50.")
        started = time.perf_counter()
        try:
            result = knowledge_search(
                tenant=tenant, query=pii_redact(options["query"]), k=options["k"], mode=options["mode"]
            )
        except HelpdeskError as exc:
            raise CommandError(exc.message) from exc
        elapsed = time.perf_counter() - started
        passages: list[dict[str, Any]] = [
            {
                "document_id": str(p.document_id),
                "document": p.document_title,
                "version": p.version_number,
                "effective_date": p.effective_date.isoformat() if p.effective_date else None,
                "section": p.section_path,
                "page": p.page,
                "score": round(p.score, 6),
                "similarity": None if p.similarity is None else round(p.similarity, 4),
                "text": p.text,
            }
            for p in result.passages
        ]
        if options["json"]:
            body = {
                "query": options["query"],
                "answerable": result.answerable,
                "top_similarity": result.top_similarity,
                "threshold": result.threshold,
                "mode": result.mode,
                "model": result.model,
                "elapsed_ms": round(elapsed * 1000, 2),
                "passages": passages,
            }
            self.stdout.write(json.dumps(body, indent=2))
            return
        verdict = "answerable" if result.answerable else "would abstain"
        self.stdout.write(f"{len(passages)} passages ({verdict}, top similarity {result.top_similarity})")
        for p in passages:
            where = " > ".join(p["section"]) or "(no section)"
            self.stdout.write(f"- {p['document']} v{p['version']} · {where} · p.{p['page']} · {p['score']}")
            self.stdout.write(f"  {p['text'][:200]}")
