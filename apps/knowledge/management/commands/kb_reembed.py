from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.knowledge.ingestion import knowledge_reembed


class Command(BaseCommand):
    help = (
        "Re-embed passages and sentence units whose vectors came from another model than EMBEDDINGS_MODEL, "
        "after creating the sentence units of versions ingested before they existed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        result = knowledge_reembed()
        elapsed = round(time.perf_counter() - started, 3)
        self.stdout.write(
            json.dumps(
                {
                    "model": settings.EMBEDDINGS_MODEL,
                    "reembedded": result.chunks,
                    "sentences_reembedded": result.sentences,
                    "versions_backfilled": result.versions_backfilled,
                    "elapsed_s": elapsed,
                }
            )
        )
