"""Fixtures every test domain shares: tenants, their staff by role, and clients signed in as each of them.

Everything is created through the accounts services, the way production creates it, on the real database
the harness starts. Tests that need the database inside another thread (websocket consumers) mark
themselves `@pytest.mark.django_db(transaction=True)`; these fixtures follow that marker.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.models import Role, Tenant, User

_sequence = itertools.count(1)
# The root level LOGGING configured (Django is set up before this module is imported).
_CONFIGURED_ROOT_LEVEL = logging.getLogger().level


@dataclass(frozen=True)
class TenantStaff:
    """A tenant with one person per role: the shape most permission tests need."""

    tenant: Tenant
    admin: User
    agent: User
    editor: User

    @property
    def slug(self) -> str:
        return self.tenant.slug


MakeTenant = Callable[..., Tenant]
MakeUser = Callable[..., User]


@pytest.fixture
def make_tenant(db: None) -> MakeTenant:
    """`make_tenant(slug=..., name=..., origins=[...])`; every argument is optional."""

    def factory(
        *, slug: str | None = None, name: str | None = None, origins: list[str] | None = None
    ) -> Tenant:
        n = next(_sequence)
        return services.tenant_create(
            slug=slug or f"tenant-{n}", name=name or f"Tenant {n}", origins=origins or []
        )

    return factory


@pytest.fixture
def make_user(db: None) -> MakeUser:
    """`make_user(tenant, roles=[Role.AGENT], username=...)`; without a tenant the user belongs nowhere.

    Without `password` the user has an unusable one (sign in with `force_login`, the fixtures' clients do):
    hashing a real password costs a noticeable fraction of a second per user.
    """

    def factory(
        tenant: Tenant | None = None,
        *,
        roles: Iterable[str] = (),
        username: str | None = None,
        email: str | None = None,
        password: str | None = None,
        first_name: str = "",
    ) -> User:
        username = username or f"user{next(_sequence)}"
        user = services.user_create(
            username=username,
            email=email or f"{username}@staff.example",
            password=password,
            first_name=first_name,
        )
        roles = list(roles)
        if roles and tenant is None:
            raise ValueError("roles need a tenant")
        for role in roles:
            assert tenant is not None
            services.membership_grant(tenant=tenant, user=user, role=role)
        return user

    return factory


def _tenant_with_staff(make_tenant: MakeTenant, make_user: MakeUser, key: str) -> TenantStaff:
    tenant = make_tenant(
        slug=f"tenant-{key}",
        name=f"Tenant {key.upper()}",
        origins=[f"https://{key}.example", f"https://shop.{key}.example"],
    )
    return TenantStaff(
        tenant=tenant,
        admin=make_user(tenant, roles=[Role.ADMIN], username=f"admin_{key}"),
        agent=make_user(tenant, roles=[Role.AGENT], username=f"agent_{key}"),
        editor=make_user(tenant, roles=[Role.EDITOR], username=f"editor_{key}"),
    )


@pytest.fixture
def tenant_a(make_tenant: MakeTenant, make_user: MakeUser) -> TenantStaff:
    """`tenant-a` ("Tenant A"), origins https://a.example and https://shop.a.example.

    Its people: admin_a, agent_a and editor_a, one role each.
    """
    return _tenant_with_staff(make_tenant, make_user, "a")


@pytest.fixture
def tenant_b(make_tenant: MakeTenant, make_user: MakeUser) -> TenantStaff:
    """`tenant-b` ("Tenant B"), origins https://b.example and https://shop.b.example.

    Its people: admin_b, agent_b and editor_b, one role each.
    """
    return _tenant_with_staff(make_tenant, make_user, "b")


@pytest.fixture
def api_client_as(db: None) -> Callable[[User | None], APIClient]:
    """`api_client_as(user)`: a DRF client with a real session for `user` (None: anonymous)."""

    def factory(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_login(user)
        return client

    return factory


@pytest.fixture
def client_as(db: None) -> Callable[[User | None], Client]:
    """`client_as(user)`: a Django test client with a real session for `user` (None: anonymous)."""

    def factory(user: User | None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return factory


@pytest.fixture
def api_admin_a(tenant_a: TenantStaff, api_client_as: Callable[[User | None], APIClient]) -> APIClient:
    return api_client_as(tenant_a.admin)


@pytest.fixture
def api_agent_a(tenant_a: TenantStaff, api_client_as: Callable[[User | None], APIClient]) -> APIClient:
    return api_client_as(tenant_a.agent)


@pytest.fixture
def api_editor_a(tenant_a: TenantStaff, api_client_as: Callable[[User | None], APIClient]) -> APIClient:
    return api_client_as(tenant_a.editor)


@pytest.fixture
def api_admin_b(tenant_b: TenantStaff, api_client_as: Callable[[User | None], APIClient]) -> APIClient:
    return api_client_as(tenant_b.admin)


@pytest.fixture
def api_agent_b(tenant_b: TenantStaff, api_client_as: Callable[[User | None], APIClient]) -> APIClient:
    return api_client_as(tenant_b.agent)


@pytest.fixture
def api_editor_b(tenant_b: TenantStaff, api_client_as: Callable[[User | None], APIClient]) -> APIClient:
    return api_client_as(tenant_b.editor)


@pytest.fixture
def api_anonymous(api_client_as: Callable[[User | None], APIClient]) -> APIClient:
    return api_client_as(None)


@pytest.fixture
def client_admin_a(tenant_a: TenantStaff, client_as: Callable[[User | None], Client]) -> Client:
    return client_as(tenant_a.admin)


@pytest.fixture
def client_agent_a(tenant_a: TenantStaff, client_as: Callable[[User | None], Client]) -> Client:
    return client_as(tenant_a.agent)


@pytest.fixture
def client_editor_a(tenant_a: TenantStaff, client_as: Callable[[User | None], Client]) -> Client:
    return client_as(tenant_a.editor)


@pytest.fixture
def client_admin_b(tenant_b: TenantStaff, client_as: Callable[[User | None], Client]) -> Client:
    return client_as(tenant_b.admin)


@pytest.fixture
def client_agent_b(tenant_b: TenantStaff, client_as: Callable[[User | None], Client]) -> Client:
    return client_as(tenant_b.agent)


@pytest.fixture
def client_editor_b(tenant_b: TenantStaff, client_as: Callable[[User | None], Client]) -> Client:
    return client_as(tenant_b.editor)


@dataclass(frozen=True)
class TenantSnapshot:
    """Everything a denied action must leave untouched on a tenant, compared with `==`."""

    slug: str
    name: str
    widget_key: str
    identity_secret: str
    is_active: bool
    updated_at: object
    origins: list[str]
    memberships: list[tuple[str, str]]


def _snapshot(tenant: Tenant) -> TenantSnapshot:
    row = Tenant.objects.get(pk=tenant.pk)
    return TenantSnapshot(
        slug=row.slug,
        name=row.name,
        widget_key=row.widget_key,
        identity_secret=row.identity_secret,
        is_active=row.is_active,
        updated_at=row.updated_at,
        origins=list(row.allowed_origins.order_by("origin").values_list("origin", flat=True)),
        memberships=list(
            row.memberships.order_by("user__username", "role").values_list("user__username", "role")
        ),
    )


@pytest.fixture
def tenant_snapshot(db: None) -> Callable[[Tenant], TenantSnapshot]:
    """`tenant_snapshot(tenant)` reads the row, origins and memberships fresh from the database (never from
    the possibly stale instance passed in): take one before a denied action and compare one after with `==`.
    """
    return _snapshot


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API leaves an event loop running in the main thread for
    the rest of the session, which would break every later test that starts its own loop."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@contextmanager
def celery_worker_in_process(*, queues: Iterable[str] = ("tools",)) -> Iterator[None]:
    """A Celery worker thread in the test process (solo pool), consuming `queues` from the test's Redis
    with the test database. What starting a worker changes process-wide is put back: the root logger's
    level (so caplog sees the same records with or without a worker) and the app's queue selection."""
    from celery.contrib.testing.worker import start_worker

    from helpdesk.celery import app as celery_app

    root = logging.getLogger()
    level = root.level
    # A worker started with `queues` narrows the *app's* queue selection, and it would stay narrowed for
    # every later worker of this process (tests/browser's ingestion worker would never see its tasks).
    selection = celery_app.amqp.queues._consume_from  # type: ignore[attr-defined]
    try:
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=list(queues)
        ):
            root.setLevel(level)
            yield
    finally:
        root.setLevel(level)
        celery_app.amqp.queues._consume_from = selection  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _root_log_level_restored() -> Iterator[None]:
    """Starting a Celery worker sets the root logger's level process-wide (to ERROR by default); put it
    back after every test, so a later test's caplog sees what the LOGGING configuration lets through."""
    logging.getLogger().setLevel(_CONFIGURED_ROOT_LEVEL)
    yield
    logging.getLogger().setLevel(_CONFIGURED_ROOT_LEVEL)


def channel_layer_forget_loops() -> None:
    """Each socket test runs in its own event loop, but the channel layer is one object per process and
    keeps receive locks across loops: a lock still held when a test's loop shut down (a cleanup callback
    the closing loop never ran) would fail every later socket with "bound to a different event loop".
    Call it once the test's loop is gone, when nothing can be receiving."""
    from channels.layers import get_channel_layer
    from channels_redis.core import ChannelLock, RedisChannelLayer

    layer = get_channel_layer()
    if isinstance(layer, RedisChannelLayer):
        layer.receive_count = 0
        layer.receive_lock = None
        layer.receive_event_loop = None
        layer.receive_buffer.clear()
        layer.receive_cleaners = []
        layer.receive_clean_locks = ChannelLock()


@pytest.fixture(autouse=True)
def _channel_layer_forgets_finished_loops() -> Iterator[None]:
    """After every test: the process-wide channel layer must not keep locks of the test's finished event
    loop (a later socket test would fail with "bound to a different event loop")."""
    yield
    channel_layer_forget_loops()
