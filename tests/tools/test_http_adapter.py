"""The HTTP adapter against a fake business system on loopback: each operation's round trip, idempotent
repeats, the host allow-list, path escaping, and every fault mapped to the right error within the time
budget without leaking the secret or the business system's internals."""

from __future__ import annotations

import datetime
import json
import select
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from apps.tools.adapters import BusinessAdapter
from apps.tools.errors import AdapterError, TransientAdapterError
from apps.tools.http import AdapterHttpClient, HttpAdapter
from apps.tools.schemas import (
    BillInfo,
    BillLine,
    OrderInfo,
    OrderItem,
    PlanChangeResult,
    PlanInfo,
    PlanOption,
    PlansComparison,
    TicketResult,
)
from tests.fakes.business_server import LEAKY_DETAIL, FakeBusiness

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "sk-live-7f3a9c1e5b2d4a6f"
TIMEOUT = 1.0


@pytest.fixture
def business() -> Iterator[FakeBusiness]:
    with FakeBusiness(token=TOKEN) as fake:
        fake.hang_seconds = 10.0
        yield fake


def make_client(base_url: str, **overrides: Any) -> AdapterHttpClient:
    """A client whose allow-list is, unless overridden, exactly the base URL's host and port."""
    options: dict[str, Any] = {
        "auth_secret": TOKEN,
        "timeout_seconds": TIMEOUT,
        "allowed_hosts": [urlsplit(base_url).netloc],
        **overrides,
    }
    return AdapterHttpClient(base_url=base_url, **options)


@pytest.fixture
def client(business: FakeBusiness) -> Iterator[AdapterHttpClient]:
    with make_client(business.base_url) as http:
        yield http


@pytest.fixture
def adapter(client: AdapterHttpClient) -> BusinessAdapter:
    # Typed as the protocol: mypy checks that HttpAdapter is a BusinessAdapter.
    return HttpAdapter(breaker_key="tenant-1:http", client=client)


def assert_no_leak(exc: BaseException, *, also: str = "") -> None:
    """Neither the secret nor the business system's error body, in the message or the whole traceback."""
    rendered = "".join(traceback.format_exception(exc)) + also
    assert TOKEN not in rendered
    assert LEAKY_DETAIL not in rendered
    assert "hunter2" not in rendered


def sent(fake: FakeBusiness) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in fake.requests]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- round trips ---------------------------------------------------------------------------------------


def test_order_lookup_round_trips_with_the_contract_headers(
    business: FakeBusiness, adapter: BusinessAdapter
) -> None:
    order = adapter.order_lookup(customer="cust-1001", order_number="NM-100234")

    assert order == OrderInfo(
        number="NM-100234",
        status="shipped",
        items=[OrderItem(description="Phone case", quantity=2)],
        placed_on=datetime.date(2025, 3, 3),
        carrier="DHL",
        tracking_number="JD0146000034",
        shipped_on=datetime.date(2025, 3, 5),
        estimated_delivery=datetime.date(2025, 3, 8),
    )
    [request] = business.requests
    assert (request.method, request.path, request.body) == (
        "GET",
        "/customers/cust-1001/orders/NM-100234",
        None,
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == "helpdesk-tools/1"
    assert "idempotency-key" not in request.headers


def test_an_order_of_another_customer_is_not_found(business: FakeBusiness, adapter: BusinessAdapter) -> None:
    with pytest.raises(AdapterError) as raised:
        adapter.order_lookup(customer="cust-1002", order_number="NM-100234")

    assert type(raised.value) is AdapterError
    assert raised.value.code == "not_found"
    assert sent(business) == [("GET", "/customers/cust-1002/orders/NM-100234")]


def test_bill_latest_round_trips_with_exact_amounts(adapter: BusinessAdapter) -> None:
    bill = adapter.bill_latest(customer="cust-1001")

    assert bill == BillInfo(
        number="B-2025-02-1001",
        period_start=datetime.date(2025, 2, 1),
        period_end=datetime.date(2025, 2, 28),
        issued_on=datetime.date(2025, 3, 1),
        due_on=datetime.date(2025, 3, 15),
        currency="EUR",
        total=Decimal("28.23"),
        status="due",
        lines=[
            BillLine(description="Basic 10", kind="plan", amount=Decimal("19.00")),
            BillLine(description="Extra data 1 GB", kind="usage", amount=Decimal("4.50")),
            BillLine(description="VAT", kind="tax", amount=Decimal("4.73")),
        ],
        previous_total=Decimal("24.10"),
    )
    # Parsed as decimals from the JSON text, never through a float.
    assert str(bill.lines[2].amount) == "4.73"


def test_a_customer_without_a_bill_is_not_found(adapter: BusinessAdapter) -> None:
    with pytest.raises(AdapterError) as raised:
        adapter.bill_latest(customer="cust-1003")

    assert raised.value.code == "not_found"


def test_plans_compare_round_trips(adapter: BusinessAdapter) -> None:
    comparison = adapter.plans_compare(customer="cust-1002")

    def option(code: str, name: str, price: str, data_gb: int | None, minutes: int | None) -> PlanOption:
        return PlanOption(
            code=code,
            name=name,
            monthly_price=Decimal(price),
            currency="EUR",
            data_gb=data_gb,
            minutes=minutes,
            description=f"{name}: {data_gb or 'unlimited'} GB, {minutes or 'unlimited'} minutes.",
            monthly_difference=Decimal(price) - Decimal("15.00"),
        )

    assert comparison == PlansComparison(
        current=PlanInfo(
            code="legacy-5",
            name="Legacy 5",
            monthly_price=Decimal("15.00"),
            currency="EUR",
            data_gb=5,
            minutes=100,
            description="Legacy 5: 5 GB, 100 minutes.",
        ),
        options=[
            option("basic-10", "Basic 10", "19.00", 10, 300),
            option("plus-50", "Plus 50", "29.00", 50, None),
            option("unlimited", "Unlimited", "45.00", None, None),
        ],
    )


def test_plan_change_is_applied_once_per_key(business: FakeBusiness, adapter: BusinessAdapter) -> None:
    first = adapter.plan_change(customer="cust-1001", plan_code="plus-50", idempotency_key="run-1:plan")
    repeat = adapter.plan_change(customer="cust-1001", plan_code="plus-50", idempotency_key="run-1:plan")

    assert first == PlanChangeResult(
        reference="PC-000001", from_plan="basic-10", to_plan="plus-50", effective_on=datetime.date(2025, 4, 1)
    )
    assert repeat == first
    assert business.side_effects == [("plan_change", "cust-1001", "run-1:plan")]
    assert [(r.method, r.path, r.body, r.headers["idempotency-key"]) for r in business.requests] == [
        ("POST", "/customers/cust-1001/plan-changes", {"plan_code": "plus-50"}, "run-1:plan"),
    ] * 2
    assert business.requests[0].headers["content-type"] == "application/json"
    assert adapter.plans_compare(customer="cust-1001").current.code == "plus-50"


def test_plan_change_to_the_current_plan_is_refused_with_the_systems_reason(
    business: FakeBusiness, adapter: BusinessAdapter
) -> None:
    with pytest.raises(AdapterError) as raised:
        adapter.plan_change(customer="cust-1001", plan_code="basic-10", idempotency_key="run-2:plan")

    assert type(raised.value) is AdapterError
    assert (raised.value.code, raised.value.message) == ("same_plan", "the customer is already on basic-10")
    assert business.side_effects == []


@pytest.mark.parametrize("plan_code", ["legacy-5", "gold-999"])
def test_plan_change_to_a_withdrawn_or_unknown_plan_is_invalid(
    business: FakeBusiness, adapter: BusinessAdapter, plan_code: str
) -> None:
    with pytest.raises(AdapterError) as raised:
        adapter.plan_change(customer="cust-1001", plan_code=plan_code, idempotency_key="run-3:plan")

    assert (raised.value.code, raised.value.message) == ("invalid_plan", f"{plan_code} is not a plan on sale")
    assert business.side_effects == []
    assert adapter.plans_compare(customer="cust-1001").current.code == "basic-10"


def test_concurrent_repeats_of_one_key_apply_once(business: FakeBusiness, adapter: BusinessAdapter) -> None:
    results: list[PlanChangeResult] = []

    def change() -> None:
        results.append(
            adapter.plan_change(customer="cust-1001", plan_code="unlimited", idempotency_key="run-4:plan")
        )

    threads = [threading.Thread(target=change) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 8
    assert {result.reference for result in results} == {"PC-000001"}
    assert business.side_effects == [("plan_change", "cust-1001", "run-4:plan")]


def test_ticket_create_is_applied_once_per_key(business: FakeBusiness, adapter: BusinessAdapter) -> None:
    def create() -> TicketResult:
        return adapter.ticket_create(
            customer="cust-1002",
            subject="No signal at home",
            description="Since Monday I have no signal in my flat.",
            idempotency_key="run-5:ticket",
        )

    first, repeat = create(), create()

    assert first == TicketResult(number="TCK-000001", status="open", subject="No signal at home")
    assert repeat == first
    assert business.side_effects == [("ticket", "cust-1002", "run-5:ticket")]
    assert business.tickets == [
        {
            "number": "TCK-000001",
            "status": "open",
            "subject": "No signal at home",
            "customer": "cust-1002",
            "description": "Since Monday I have no signal in my flat.",
        }
    ]


def test_paths_are_joined_under_the_base_urls_path() -> None:
    with FakeBusiness(token=TOKEN, path_prefix="/api/v2") as fake, make_client(fake.base_url + "/") as http:
        HttpAdapter(breaker_key="t", client=http).plans_compare(customer="cust-1001")

        assert sent(fake) == [("GET", "/api/v2/customers/cust-1001/plans")]


def test_an_empty_secret_sends_no_authorization() -> None:
    with FakeBusiness(token="") as fake, make_client(fake.base_url, auth_secret="") as http:
        HttpAdapter(breaker_key="t", client=http).bill_latest(customer="cust-1001")

        assert "authorization" not in fake.requests[0].headers


def test_a_wrong_secret_is_rejected_and_changes_nothing(business: FakeBusiness) -> None:
    with make_client(business.base_url, auth_secret="sk-wrong-0000") as http:
        adapter = HttpAdapter(breaker_key="t", client=http)
        with pytest.raises(AdapterError) as raised:
            adapter.plan_change(customer="cust-1001", plan_code="plus-50", idempotency_key="run-6:plan")

    assert type(raised.value) is AdapterError
    assert (raised.value.code, raised.value.message) == (
        "rejected",
        "the business system refused the request (HTTP 401)",
    )
    assert "sk-wrong-0000" not in "".join(traceback.format_exception(raised.value))
    assert business.side_effects == []


# ---- allow-list and paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "allowed"),
    [
        ("https://api.evil.example", ["api.example.com"]),
        ("https://api.example.com.evil.example", ["api.example.com"]),
        ("https://evil.example/api.example.com", ["api.example.com"]),
        ("https://api.example.com@evil.example", ["api.example.com"]),
        ("https://user:pw@api.example.com", ["api.example.com"]),
        ("http://api.example.com", ["api.example.com"]),
        ("ftp://api.example.com", ["api.example.com"]),
        ("https://api.example.com/v1?tenant=1", ["api.example.com"]),
        ("http://127.0.0.1:8000", ["localhost:8000"]),
        ("not a url", ["api.example.com"]),
        ("", [""]),
        # A host alone allows only its scheme's default port: not the database or Redis beside the API.
        ("http://127.0.0.1:8000", ["127.0.0.1"]),
        ("http://127.0.0.1:5432", ["127.0.0.1"]),
        ("http://localhost:6379", ["localhost"]),
        ("https://api.example.com:8443", ["api.example.com"]),
        ("http://localhost", ["localhost:443"]),
        # host:port allows that port only.
        ("http://127.0.0.1:8000", ["127.0.0.1:8001"]),
        ("https://api.example.com", ["api.example.com:8443"]),
        ("https://api.example.com:8443", ["api.example.com:443"]),
        # IPv6: bracketed, with or without a port; a bare address cannot say where its port starts.
        ("http://[::1]:8000", ["[::1]"]),
        ("http://[::1]:8000", ["[::1]:8001"]),
        ("http://[::1]:8000", ["::1"]),
        ("http://[::1]", ["::1"]),
        ("http://[::1]:8000", ["[::2]:8000"]),
        # Malformed entries allow nothing.
        ("http://127.0.0.1:8000", ["127.0.0.1:"]),
        ("http://127.0.0.1:8000", ["127.0.0.1:80000"]),
        ("http://127.0.0.1:8000", ["127.0.0.1:+8000"]),
        ("https://api.example.com", ["https://api.example.com"]),
        ("https://api.example.com", ["api.example.com/v1"]),
    ],
)
def test_a_base_url_off_the_allow_list_is_refused(base_url: str, allowed: list[str]) -> None:
    with pytest.raises(AdapterError) as raised:
        make_client(base_url, allowed_hosts=allowed)

    assert raised.value.code == "host_not_allowed"
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    ("base_url", "allowed"),
    [
        ("https://API.Example.com/v1", ["api.example.COM"]),
        ("https://bücher.example", ["xn--bcher-kva.example"]),
        ("https://xn--bcher-kva.example:8443", ["bücher.example:8443"]),
        ("http://LocalHost:8000", ["localhost:8000"]),
        # The default port is implied by a host alone, and may be written out either way.
        ("https://api.example.com", ["api.example.com"]),
        ("https://api.example.com:443/v1", ["api.example.com"]),
        ("https://api.example.com", ["api.example.com:443"]),
        ("http://localhost/api", ["localhost"]),
        ("http://localhost:80", ["localhost:80"]),
        ("https://api.example.com:8443", ["api.example.com:8443"]),
        ("https://api.example.com:8443", ["other.example", "api.example.com:8443"]),
        # IPv6, bracketed as in a URL.
        ("http://[::1]:8000", ["[::1]:8000"]),
        ("http://[::1]", ["[::1]"]),
        ("http://[::1]:80", ["[0:0::1]"]),
        ("https://[2001:db8::7]:8443", ["[2001:DB8::7]:8443"]),
    ],
)
def test_an_allowed_base_url_is_accepted(base_url: str, allowed: list[str]) -> None:
    make_client(base_url, allowed_hosts=allowed).close()


def test_an_allowed_host_on_another_port_is_never_called(business: FakeBusiness) -> None:
    # The company points its adapter at another port of an allowed host: refused before any connection.
    with FakeBusiness(token=TOKEN) as other:
        with pytest.raises(AdapterError) as raised:
            make_client(other.base_url, allowed_hosts=["127.0.0.1", f"127.0.0.1:{business.port}"])
        assert other.requests == []
    assert (raised.value.code, raised.value.message) == (
        "host_not_allowed",
        f"127.0.0.1:{other.port} is not on the adapter's host allow-list",
    )


def test_host_and_port_on_the_list_is_called(business: FakeBusiness) -> None:
    with make_client(business.base_url, allowed_hosts=[f"127.0.0.1:{business.port}"]) as http:
        plans = HttpAdapter(breaker_key="t", client=http).plans_compare(customer="cust-1001")

    assert plans.current.code == "basic-10"
    assert sent(business) == [("GET", "/customers/cust-1001/plans")]


def test_allowed_hosts_must_not_be_a_bare_string() -> None:
    with pytest.raises(TypeError):
        make_client("https://api.example.com", allowed_hosts="api.example.com")


def test_the_allow_list_matches_hosts_case_insensitively_on_calls(business: FakeBusiness) -> None:
    with make_client(
        f"http://LOCALHOST:{business.port}", allowed_hosts=[f"Localhost:{business.port}"]
    ) as http:
        plans = HttpAdapter(breaker_key="t", client=http).plans_compare(customer="cust-1001")

    assert plans.current.code == "basic-10"


def test_a_redirect_is_not_followed_even_to_an_allowed_host(business: FakeBusiness) -> None:
    with FakeBusiness(token=TOKEN) as other:
        business.redirect_location = f"http://localhost:{other.port}/customers/cust-1001/plans"
        business.behaviour = "redirect"
        with (
            make_client(
                business.base_url, allowed_hosts=[f"127.0.0.1:{business.port}", f"localhost:{other.port}"]
            ) as http,
            pytest.raises(AdapterError) as raised,
        ):
            HttpAdapter(breaker_key="t", client=http).plans_compare(customer="cust-1001")

        assert other.requests == []
    assert (type(raised.value), raised.value.code) == (AdapterError, "bad_response")
    assert sent(business) == [("GET", "/customers/cust-1001/plans")]


@pytest.mark.parametrize(
    ("order_number", "path"),
    [
        ("../../admin", "/customers/cust-1001/orders/..%2F..%2Fadmin"),
        ("NM-1?admin=1", "/customers/cust-1001/orders/NM-1%3Fadmin%3D1"),
        ("NM-1#fragment", "/customers/cust-1001/orders/NM-1%23fragment"),
        ("%2e%2e", "/customers/cust-1001/orders/%252e%252e"),
        ("NM 1/../../../x", "/customers/cust-1001/orders/NM%201%2F..%2F..%2F..%2Fx"),
    ],
)
def test_an_order_number_stays_inside_its_path_segment(
    business: FakeBusiness, adapter: BusinessAdapter, order_number: str, path: str
) -> None:
    with pytest.raises(AdapterError) as raised:
        adapter.order_lookup(customer="cust-1001", order_number=order_number)

    assert raised.value.code == "not_found"
    assert sent(business) == [("GET", path)]
    assert business.requests[0].headers["host"] == f"127.0.0.1:{business.port}"


def test_a_customer_stays_inside_its_path_segment(business: FakeBusiness, adapter: BusinessAdapter) -> None:
    with pytest.raises(AdapterError) as raised:
        adapter.plan_change(customer="cust-1002/../cust-1001", plan_code="plus-50", idempotency_key="k")

    assert raised.value.code == "not_found"
    assert sent(business) == [("POST", "/customers/cust-1002%2F..%2Fcust-1001/plan-changes")]
    assert business.side_effects == []


@pytest.mark.parametrize("order_number", ["..", ".", ""])
def test_dot_and_empty_segments_are_never_sent(
    business: FakeBusiness, adapter: BusinessAdapter, order_number: str
) -> None:
    with pytest.raises(AdapterError) as raised:
        adapter.order_lookup(customer="cust-1001", order_number=order_number)

    assert raised.value.code == "not_found"
    assert business.requests == []


# ---- faults --------------------------------------------------------------------------------------------

FAULTS = [
    ("error_500", TransientAdapterError, "unavailable"),
    ("error_503", TransientAdapterError, "unavailable"),
    ("error_429", TransientAdapterError, "rate_limited"),
    ("hang", TransientAdapterError, "timeout"),
    ("slow_trickle", TransientAdapterError, "timeout"),
    ("drop", TransientAdapterError, "unavailable"),
    ("bad_json", AdapterError, "bad_response"),
    ("redirect", AdapterError, "bad_response"),
    ("huge", AdapterError, "bad_response"),
    ("huge_chunked", AdapterError, "bad_response"),
]


@pytest.mark.parametrize(("behaviour", "error_type", "code"), FAULTS)
def test_a_fault_maps_to_its_error_within_the_timeout(
    business: FakeBusiness,
    adapter: BusinessAdapter,
    caplog: pytest.LogCaptureFixture,
    behaviour: str,
    error_type: type[AdapterError],
    code: str,
) -> None:
    business.behaviour = behaviour
    started = time.monotonic()
    with pytest.raises(AdapterError) as raised:
        adapter.plans_compare(customer="cust-1001")
    elapsed = time.monotonic() - started

    assert (type(raised.value), raised.value.code) == (error_type, code)
    assert elapsed < TIMEOUT + 1
    if code == "timeout":
        assert elapsed >= TIMEOUT - 0.05  # it did wait for the budget, not fail on something else
    assert business.request_count == 1
    assert_no_leak(raised.value, also=caplog.text)
    assert f"-> {code}" in caplog.text


@pytest.mark.parametrize(
    ("behaviour", "applied"),
    [
        ("error_503", False),
        ("error_429", False),
        ("hang", False),
        ("drop", False),
        ("bad_json", False),
        ("hang_after_effect", True),
        ("slow_trickle", True),
    ],
)
def test_a_plan_change_retried_after_a_fault_is_applied_once(
    business: FakeBusiness, adapter: BusinessAdapter, behaviour: str, applied: bool
) -> None:
    business.script([behaviour])
    started = time.monotonic()
    with pytest.raises(AdapterError):
        adapter.plan_change(customer="cust-1001", plan_code="plus-50", idempotency_key="run-7:plan")
    elapsed = time.monotonic() - started
    effects_after_fault = business.effect_count

    result = adapter.plan_change(customer="cust-1001", plan_code="plus-50", idempotency_key="run-7:plan")

    assert elapsed < TIMEOUT + 1
    assert effects_after_fault == (1 if applied else 0)
    assert result.reference == "PC-000001"
    assert business.side_effects == [("plan_change", "cust-1001", "run-7:plan")]


def test_a_trickle_just_inside_the_read_timeout_is_cut_at_the_deadline(
    business: FakeBusiness, adapter: BusinessAdapter
) -> None:
    # Each byte arrives before the read timeout, so only the whole-call deadline can stop this.
    business.trickle_interval = 0.9 * TIMEOUT
    business.behaviour = "slow_trickle"
    started = time.monotonic()
    with pytest.raises(TransientAdapterError) as raised:
        adapter.plans_compare(customer="cust-1001")

    assert raised.value.code == "timeout"
    # Without the deadline it would end at about 2 x TIMEOUT: one more byte gap plus a read timeout.
    assert time.monotonic() - started < TIMEOUT + 0.5


def test_a_slow_answer_that_completes_in_time_is_read_whole(business: FakeBusiness) -> None:
    business.trickle_interval = 0.0005
    business.behaviour = "slow_trickle"
    with make_client(business.base_url, timeout_seconds=5.0) as http:
        order = HttpAdapter(breaker_key="t", client=http).order_lookup(
            customer="cust-1002", order_number="NM-200456"
        )

    assert (order.number, order.status, order.delivered_on) == (
        "NM-200456",
        "delivered",
        datetime.date(2025, 2, 24),
    )


def test_a_refused_connection_is_unavailable() -> None:
    with make_client(f"http://127.0.0.1:{free_port()}") as http:
        started = time.monotonic()
        with pytest.raises(TransientAdapterError) as raised:
            HttpAdapter(breaker_key="t", client=http).bill_latest(customer="cust-1001")

    assert raised.value.code == "unavailable"
    assert time.monotonic() - started < TIMEOUT + 1
    assert_no_leak(raised.value)


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (
            422,
            {"code": "credit_check_failed", "message": "The account has\nan unpaid\x00 balance."},
            "credit_check_failed",
            "The account has an unpaid balance.",
        ),
        (409, {"code": "same_plan"}, "same_plan", "same plan"),
        (409, {"code": "long_" + "x" * 40, "message": "m"}, "rejected", None),
        (422, {"code": "Bad-Code!", "message": LEAKY_DETAIL}, "rejected", None),
        (422, {"code": ["invalid_plan"]}, "rejected", None),
        (422, b"<html>" + LEAKY_DETAIL.encode() + b"</html>", "rejected", None),
        (400, {"code": "bad_request", "message": LEAKY_DETAIL}, "rejected", None),
        (403, {"code": "forbidden", "message": LEAKY_DETAIL}, "rejected", None),
        (418, b"", "rejected", None),
        (404, {"code": "gone", "message": LEAKY_DETAIL}, "not_found", None),
        (301, b"", "bad_response", None),
        (307, b"", "bad_response", None),
        (502, b"", "unavailable", None),
        (504, b"", "unavailable", None),
    ],
)
def test_statuses_map_to_codes(
    business: FakeBusiness,
    adapter: BusinessAdapter,
    status: int,
    body: bytes | dict[str, Any],
    code: str,
    message: str | None,
) -> None:
    business.custom_response = (status, body, {})
    business.behaviour = "custom"

    with pytest.raises(AdapterError) as raised:
        adapter.plan_change(customer="cust-1001", plan_code="plus-50", idempotency_key="run-8:plan")

    assert raised.value.code == code
    assert raised.value.transient is (status >= 500)
    if message is not None:
        assert raised.value.message == message
    assert_no_leak(raised.value)


def test_a_refusal_message_is_bounded() -> None:
    with FakeBusiness(token=TOKEN) as fake, make_client(fake.base_url) as http:
        fake.custom_response = (422, {"code": "too_chatty", "message": "word " * 500}, {})
        fake.behaviour = "custom"
        with pytest.raises(AdapterError) as raised:
            HttpAdapter(breaker_key="t", client=http).plans_compare(customer="cust-1001")

    assert raised.value.code == "too_chatty"
    assert len(raised.value.message) == 300


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"number": LEAKY_DETAIL, "status": "lost"}, {}),
        (b"null", {}),
        (b"[" * 100_000, {}),
        (b'{"number": NaN}', {}),
        (b"", {}),
        ({"current": {}, "options": []}, {"Content-Encoding": "gzip"}),
        (b"{}", {"Content-Length": "99999999999"}),
    ],
)
def test_a_2xx_that_is_not_a_valid_answer_is_a_bad_response(
    business: FakeBusiness,
    adapter: BusinessAdapter,
    caplog: pytest.LogCaptureFixture,
    body: bytes | dict[str, Any],
    headers: dict[str, str],
) -> None:
    business.custom_response = (200, body, headers)
    business.behaviour = "custom"

    with pytest.raises(AdapterError) as raised:
        adapter.order_lookup(customer="cust-1001", order_number="NM-100234")

    assert (type(raised.value), raised.value.code) == (AdapterError, "bad_response")
    assert_no_leak(raised.value, also=caplog.text)


def test_invalid_secrets_and_keys_are_refused_before_sending(business: FakeBusiness) -> None:
    with pytest.raises(ValueError, match="auth_secret") as raised:
        make_client(business.base_url, auth_secret="line\r\nX-Injected: 1")
    assert "Injected" not in str(raised.value)

    with make_client(business.base_url) as http, pytest.raises(ValueError, match="idempotency_key"):
        HttpAdapter(breaker_key="t", client=http).ticket_create(
            customer="cust-1001", subject="s", description="d", idempotency_key="k\r\nX-Injected: 1"
        )
    assert business.requests == []


# ---- the fake as a separate process --------------------------------------------------------------------


def control(base_url: str, payload: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"{base_url}/_control",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def fetch_state(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_state", timeout=5) as response:
        state: dict[str, Any] = json.load(response)
        return state


def test_the_fake_runs_as_a_separate_process(tmp_path: Path) -> None:
    state_file = tmp_path / "business-state.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.business_server",
            "--port",
            "0",
            "--state-file",
            str(state_file),
            "--token",
            TOKEN,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the fake printed no base URL"
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert json.loads(state_file.read_text()) == {"side_effects": []}

        assert control(base_url, {"behaviour": "teleport"}) == 400
        assert control(base_url, {"hang_seconds": "forever"}) == 400
        # A worker that dies mid-call: the effect is applied, the answer never comes.
        assert control(base_url, {"behaviour": "ok", "script": ["hang_after_effect"]}) == 200
        with make_client(base_url) as http:
            adapter = HttpAdapter(breaker_key="t", client=http)
            with pytest.raises(TransientAdapterError) as raised:
                adapter.plan_change(customer="cust-1001", plan_code="unlimited", idempotency_key="run-9:plan")
            assert raised.value.code == "timeout"
            assert json.loads(state_file.read_text()) == {
                "side_effects": [["plan_change", "cust-1001", "run-9:plan"]]
            }

            assert control(base_url, {"script": ["error_503"]}) == 200
            with pytest.raises(TransientAdapterError):
                adapter.plan_change(customer="cust-1001", plan_code="unlimited", idempotency_key="run-9:plan")
            result = adapter.plan_change(
                customer="cust-1001", plan_code="unlimited", idempotency_key="run-9:plan"
            )

        assert result == PlanChangeResult(
            reference="PC-000001",
            from_plan="basic-10",
            to_plan="unlimited",
            effective_on=datetime.date(2025, 4, 1),
        )
        assert json.loads(state_file.read_text()) == {
            "side_effects": [["plan_change", "cust-1001", "run-9:plan"]]
        }
        state = fetch_state(base_url)
        assert (state["effect_count"], state["request_count"], state["behaviour"]) == (1, 3, "ok")
        assert state["requests"] == [["POST", "/customers/cust-1001/plan-changes"]] * 3
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0
