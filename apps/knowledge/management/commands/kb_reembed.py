from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.knowledge.ingestion import chunks_reembed


class Command(BaseCommand):
    help = "Re-embed passages whose vectors came from another model than EMBEDDINGS_MODEL."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        count = chunks_reembed()
        elapsed = round(time.perf_counter() - started, 3)
        self.stdout.write(
            json.dumps({"model": settings.EMBEDDINGS_MODEL, "reembedded": count, "elapsed_s": elapsed})
        )
