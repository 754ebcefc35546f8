"""Recording and rendering against the harness's real Valkey: exact values, as a scraper parses them."""

from __future__ import annotations

import logging
import math
import threading

import pytest
import redis

from apps.audit import metrics
from apps.audit.metrics import abstention_count, error_count, metrics_render, reply_observe
from apps.core import errors
from apps.core.errors import TemporarilyUnavailable
from tests.audit.exposition import check_histograms, parse

TTFT = "helpdesk_assistant_time_to_first_token_seconds"
TPS = "helpdesk_assistant_tokens_per_second"
TOKENS = "helpdesk_llm_tokens_total"
REPLIES = "helpdesk_assistant_replies_total"
ERRORS = "helpdesk_errors_total"
ABSTENTIONS = "helpdesk_assistant_abstentions_total"


def observe(tenant="tenant-a", status="complete", ttft=None, tps=None, prompt=0, completion=0):
    reply_observe(
        tenant=tenant,
        status=status,
        ttft_seconds=ttft,
        tokens_per_second=tps,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def scrape():
    exposition = parse(metrics_render())
    check_histograms(exposition)
    return exposition


def test_empty_render_declares_every_family_and_nothing_else():
    text = metrics_render()
    assert text == "".join(f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.type}\n" for f in metrics.FAMILIES)
    exposition = parse(text)
    assert exposition.types == {
        TTFT: "histogram",
        TPS: "histogram",
        TOKENS: "counter",
        REPLIES: "counter",
        ERRORS: "counter",
        ABSTENTIONS: "counter",
        "helpdesk_tool_runs_total": "counter",
        "helpdesk_tool_run_seconds": "histogram",
        "helpdesk_handoffs_total": "counter",
        "helpdesk_handoff_claim_seconds": "histogram",
        "helpdesk_case_file_seconds": "histogram",
        "helpdesk_csat_ratings_total": "counter",
        "helpdesk_answer_cache_total": "counter",
        "helpdesk_composed_sentences_total": "counter",
        "helpdesk_model_replies_total": "counter",
        "helpdesk_model_time_to_first_content_seconds": "histogram",
        "helpdesk_model_errors_total": "counter",
        "helpdesk_model_abstentions_total": "counter",
        "helpdesk_model_composed_sentences_total": "counter",
    }
    assert exposition.samples == []


def test_counters_are_exact():
    observe(status="complete", prompt=120, completion=30)
    observe(status="complete", prompt=80, completion=20)
    observe(status="interrupted", prompt=50, completion=5)
    observe(status="refused", prompt=7, completion=0)
    error_count(tenant="tenant-a", code="llm_unavailable")
    error_count(tenant="tenant-a", code="llm_unavailable")
    error_count(tenant="tenant-a", code="rate_limited")
    abstention_count(tenant="tenant-a")

    exposition = scrape()
    assert exposition.samples == [
        (TOKENS, {"tenant": "tenant-a", "kind": "completion"}, 55.0),
        (TOKENS, {"tenant": "tenant-a", "kind": "prompt"}, 257.0),
        (REPLIES, {"tenant": "tenant-a", "status": "complete"}, 2.0),
        (REPLIES, {"tenant": "tenant-a", "status": "interrupted"}, 1.0),
        (REPLIES, {"tenant": "tenant-a", "status": "refused"}, 1.0),
        (ERRORS, {"tenant": "tenant-a", "code": "llm_unavailable"}, 2.0),
        (ERRORS, {"tenant": "tenant-a", "code": "rate_limited"}, 1.0),
        (ABSTENTIONS, {"tenant": "tenant-a"}, 1.0),
    ]


def test_every_reply_status_is_its_own_series():
    for status in ["complete", "interrupted", "failed", "superseded", "abstained", "refused"]:
        observe(status=status)
    assert {ls["status"]: v for ls, v in _values(scrape(), REPLIES)} == {
        "complete": 1.0,
        "interrupted": 1.0,
        "failed": 1.0,
        "superseded": 1.0,
        "abstained": 1.0,
        "refused": 1.0,
    }


def test_ttft_histogram_buckets_are_cumulative_with_sum_and_count():
    # Exact binary fractions, so the sum is exact; 0.5 sits on a bound (`le` is inclusive), 100 above all.
    for seconds in [0.03125, 0.5, 0.5, 2.0, 100.0]:
        observe(ttft=seconds)
    exposition = scrape()
    buckets = {ls["le"]: v for ls, v in _values(exposition, f"{TTFT}_bucket")}
    assert buckets == {
        "0.05": 1.0,
        "0.1": 1.0,
        "0.25": 1.0,
        "0.5": 3.0,
        "0.75": 3.0,
        "1.0": 3.0,
        "1.5": 3.0,
        "2.0": 4.0,
        "3.0": 4.0,
        "5.0": 4.0,
        "7.5": 4.0,
        "10.0": 4.0,
        "15.0": 4.0,
        "20.0": 4.0,
        "30.0": 4.0,
        "60.0": 4.0,
        "+Inf": 5.0,
    }
    assert exposition.value(f"{TTFT}_sum", tenant="tenant-a") == 103.03125
    assert exposition.value(f"{TTFT}_count", tenant="tenant-a") == 5.0
    # Buckets come in ascending order, as the format requires.
    assert [ls["le"] for ls in exposition.series(f"{TTFT}_bucket")] == list(buckets)


def test_tokens_per_second_histogram():
    for rate in [0.5, 1.0, 42.0, 42.0, 499.0, 501.0]:
        observe(tps=rate)
    exposition = scrape()
    buckets = {ls["le"]: v for ls, v in _values(exposition, f"{TPS}_bucket")}
    assert list(buckets) == [metrics._format_float(b) for b in metrics.TPS_BUCKETS] + ["+Inf"]
    assert (buckets["1.0"], buckets["30.0"], buckets["50.0"], buckets["300.0"], buckets["500.0"]) == (
        2.0,
        2.0,
        4.0,
        4.0,
        5.0,
    )
    assert buckets["+Inf"] == 6.0
    assert exposition.value(f"{TPS}_sum", tenant="tenant-a") == 1085.5
    assert exposition.value(f"{TPS}_count", tenant="tenant-a") == 6.0


def test_missing_or_nonsense_timings_skip_the_histogram_but_count_the_reply():
    observe(status="failed", ttft=None, tps=None, prompt=10, completion=0)
    observe(status="failed", ttft=-1.0, tps=math.nan, prompt=10, completion=0)
    observe(status="failed", ttft=math.inf, tps=-3.0, prompt=-5, completion=-1)
    exposition = scrape()
    assert exposition.series(f"{TTFT}_count") == []
    assert exposition.series(f"{TPS}_count") == []
    assert exposition.value(REPLIES, tenant="tenant-a", status="failed") == 3.0
    # Negative token counts are a caller's bug; a counter never goes down.
    assert exposition.value(TOKENS, tenant="tenant-a", kind="prompt") == 20.0
    assert exposition.value(TOKENS, tenant="tenant-a", kind="completion") == 0.0


def test_tenants_are_separate_series():
    observe(tenant="tenant-a", ttft=0.2, tps=10.0, prompt=100, completion=10)
    observe(tenant="tenant-b", ttft=4.0, tps=100.0, prompt=1, completion=2)
    observe(tenant="tenant-b", status="failed")
    error_count(tenant="tenant-b", code="conflict")
    abstention_count(tenant="tenant-a")
    abstention_count(tenant="tenant-b")
    abstention_count(tenant="tenant-b")

    exposition = scrape()
    assert exposition.value(f"{TTFT}_bucket", tenant="tenant-a", le="0.25") == 1.0
    assert exposition.value(f"{TTFT}_bucket", tenant="tenant-b", le="0.25") == 0.0
    assert exposition.value(f"{TTFT}_sum", tenant="tenant-a") == pytest.approx(0.2)
    assert exposition.value(f"{TTFT}_sum", tenant="tenant-b") == 4.0
    assert exposition.value(f"{TPS}_count", tenant="tenant-a") == 1.0
    assert exposition.value(f"{TPS}_count", tenant="tenant-b") == 1.0
    assert exposition.value(REPLIES, tenant="tenant-a", status="complete") == 1.0
    assert exposition.value(REPLIES, tenant="tenant-b", status="complete") == 1.0
    assert exposition.value(REPLIES, tenant="tenant-b", status="failed") == 1.0
    assert exposition.series(ERRORS) == [{"tenant": "tenant-b", "code": "conflict"}]
    assert exposition.value(TOKENS, tenant="tenant-a", kind="prompt") == 100.0
    assert exposition.value(TOKENS, tenant="tenant-b", kind="prompt") == 1.0
    assert exposition.value(ABSTENTIONS, tenant="tenant-a") == 1.0
    assert exposition.value(ABSTENTIONS, tenant="tenant-b") == 2.0


def test_unknown_status_and_code_are_counted_as_other():
    observe(status="exploded")
    observe(status="COMPLETE")
    error_count(tenant="tenant-a", code="kaboom")
    error_count(tenant="tenant-a", code='"; drop')
    exposition = scrape()
    assert _values(exposition, REPLIES) == [({"tenant": "tenant-a", "status": "other"}, 2.0)]
    assert _values(exposition, ERRORS) == [({"tenant": "tenant-a", "code": "other"}, 2.0)]


def test_every_error_code_of_the_hierarchy_is_a_known_label():
    codes = {cls.code for cls in _subclasses(errors.HelpdeskError)} | {errors.HelpdeskError.code}
    assert codes <= metrics.ERROR_CODES
    for code in sorted(metrics.ERROR_CODES):
        error_count(tenant="tenant-a", code=code)
    assert {ls["code"] for ls in scrape().series(ERRORS)} == metrics.ERROR_CODES


def test_label_values_are_escaped():
    tenant = 'we\\ird "co"\nline2 ünï'
    observe(tenant=tenant, ttft=1.0, prompt=3, completion=4)
    abstention_count(tenant=tenant)
    text = metrics_render()
    escaped = 'we\\\\ird \\"co\\"\\nline2 ünï'
    assert f'{ABSTENTIONS}{{tenant="{escaped}"}} 1\n' in text
    assert f'{TTFT}_bucket{{tenant="{escaped}",le="1.0"}} 1\n' in text
    assert f'{TOKENS}{{tenant="{escaped}",kind="prompt"}} 3\n' in text
    # ...and a parser reads back the original value.
    exposition = parse(text)
    assert exposition.value(ABSTENTIONS, tenant=tenant) == 1.0
    assert exposition.value(f"{TTFT}_count", tenant=tenant) == 1.0


def test_exposition_lines_have_the_exact_shape():
    observe(ttft=0.5, tps=20.0, prompt=1, completion=2)
    lines = metrics_render().splitlines()
    assert lines[:3] == [
        f"# HELP {TTFT} Seconds from the customer's message to the first streamed token of the assistant's "
        "reply.",
        f"# TYPE {TTFT} histogram",
        f'{TTFT}_bucket{{tenant="tenant-a",le="0.05"}} 0',
    ]
    assert f'{TTFT}_bucket{{tenant="tenant-a",le="+Inf"}} 1' in lines
    assert f'{TTFT}_sum{{tenant="tenant-a"}} 0.5' in lines
    assert f'{TTFT}_count{{tenant="tenant-a"}} 1' in lines
    assert f'{TOKENS}{{tenant="tenant-a",kind="completion"}} 2' in lines
    assert f'{REPLIES}{{tenant="tenant-a",status="complete"}} 1' in lines


def test_one_observation_is_one_round_trip(monkeypatch):
    observe(ttft=0.1, tps=10.0, prompt=1, completion=1)  # connects (handshake commands) outside the count
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    observe(ttft=0.1, tps=10.0, prompt=1, completion=1)
    assert len(sent) == 1
    error_count(tenant="tenant-a", code="conflict")
    abstention_count(tenant="tenant-a")
    assert len(sent) == 3
    monkeypatch.undo()
    exposition = scrape()
    assert exposition.value(f"{TTFT}_count", tenant="tenant-a") == 2.0
    assert exposition.value(TOKENS, tenant="tenant-a", kind="prompt") == 2.0


def test_concurrent_recording_from_threads_loses_nothing():
    def work():
        for _ in range(50):
            observe(ttft=0.3, prompt=2, completion=1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    exposition = scrape()
    assert exposition.value(REPLIES, tenant="tenant-a", status="complete") == 400.0
    assert exposition.value(TOKENS, tenant="tenant-a", kind="prompt") == 800.0
    assert exposition.value(f"{TTFT}_bucket", tenant="tenant-a", le="0.5") == 400.0
    assert exposition.value(f"{TTFT}_sum", tenant="tenant-a") == pytest.approx(120.0)


def test_fields_of_another_layout_are_ignored():
    observe(prompt=1)
    client = metrics._sink().render_client
    client.hset(metrics.REDIS_KEY, "not json", "1")
    client.hset(metrics.REDIS_KEY, '["helpdesk_gone_total",["x"],""]', "1")
    client.hset(metrics.REDIS_KEY, f'["{REPLIES}",["only-one-label"],""]', "1")
    client.hset(metrics.REDIS_KEY, f'["{REPLIES}",["tenant-a","complete"],"sum"]', "1")
    client.hset(metrics.REDIS_KEY, f'["{TTFT}",["tenant-a"],"not-a-bound"]', "1")
    exposition = scrape()
    assert _values(exposition, REPLIES) == [({"tenant": "tenant-a", "status": "complete"}, 1.0)]
    assert exposition.series(f"{TTFT}_count") == []


def test_recording_without_redis_never_raises_and_warns_once(redis_down, caplog):
    caplog.set_level(logging.WARNING, logger="apps.audit.metrics")
    observe(ttft=0.5, tps=10.0, prompt=1, completion=1)
    observe(status="failed")
    error_count(tenant="tenant-a", code="llm_unavailable")
    abstention_count(tenant="tenant-a")
    warnings = [r for r in caplog.records if r.name == "apps.audit.metrics"]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert warnings[0].getMessage().startswith("metrics not recorded: Redis unavailable (ConnectionError: ")


@pytest.mark.parametrize(("skip_seconds", "attempts"), [(5.0, 1), (0.0, 3)])
def test_after_a_failure_recording_backs_off(redis_down, monkeypatch, skip_seconds, attempts):
    failures = []
    original = metrics._on_record_failure
    monkeypatch.setattr(metrics, "SKIP_AFTER_FAILURE_SECONDS", skip_seconds)

    def counting(exc):
        failures.append(exc)
        original(exc)

    monkeypatch.setattr(metrics, "_on_record_failure", counting)
    for _ in range(3):
        observe()
    # Within the back-off a stalled Redis costs nothing more; past it, every observation tries again.
    assert len(failures) == attempts
    assert all(isinstance(exc, redis.ConnectionError) for exc in failures)


def test_render_without_redis_is_temporarily_unavailable(redis_down):
    with pytest.raises(TemporarilyUnavailable) as raised:
        metrics_render()
    assert raised.value.code == "temporarily_unavailable"
    assert raised.value.retry_after == 5


def _values(exposition, name):
    return [(ls, v) for n, ls, v in exposition.samples if n == name]


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
