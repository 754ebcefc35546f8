"""The reason the metrics live in Redis: separate OS processes add up in one scrape of any of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from apps.audit.metrics import metrics_render, reply_observe
from tests.audit.exposition import check_histograms, parse

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = """
import sys
import django

django.setup()
from apps.audit.metrics import error_count, reply_observe

for _ in range(int(sys.argv[1])):
    reply_observe(tenant="tenant-a", status="complete", ttft_seconds=float(sys.argv[2]),
                  tokens_per_second=40.0, prompt_tokens=100, completion_tokens=10)
error_count(tenant="tenant-a", code="llm_unavailable")
print("recorded", flush=True)
"""


def test_two_processes_and_this_one_sum_up_in_one_render():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "helpdesk.settings.test"}
    # Both run at the same time: the increments interleave on the server and none is lost.
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", SNIPPET, count, ttft],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for count, ttft in [("30", "0.2"), ("20", "4.0")]
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert (worker.returncode, out) == (0, "recorded\n"), err
    reply_observe(
        tenant="tenant-a",
        status="failed",
        ttft_seconds=None,
        tokens_per_second=None,
        prompt_tokens=5,
        completion_tokens=0,
    )

    exposition = parse(metrics_render())
    check_histograms(exposition)
    replies = "helpdesk_assistant_replies_total"
    ttft = "helpdesk_assistant_time_to_first_token_seconds"
    assert exposition.value(replies, tenant="tenant-a", status="complete") == 50.0
    assert exposition.value(replies, tenant="tenant-a", status="failed") == 1.0
    assert exposition.value("helpdesk_llm_tokens_total", tenant="tenant-a", kind="prompt") == 5005.0
    assert exposition.value("helpdesk_llm_tokens_total", tenant="tenant-a", kind="completion") == 500.0
    assert exposition.value("helpdesk_errors_total", tenant="tenant-a", code="llm_unavailable") == 2.0
    assert exposition.value(f"{ttft}_bucket", tenant="tenant-a", le="0.25") == 30.0
    assert exposition.value(f"{ttft}_bucket", tenant="tenant-a", le="5.0") == 50.0
    assert exposition.value(f"{ttft}_count", tenant="tenant-a") == 50.0
    assert abs(exposition.value(f"{ttft}_sum", tenant="tenant-a") - (30 * 0.2 + 20 * 4.0)) < 1e-9
