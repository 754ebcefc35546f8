"""The operator's admin page for a company's messaging channel: it renders without either secret, seals
new ones, refuses a provider host off the allow-list and an enabled channel without a signing secret."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.core.sealing import unseal
from apps.messaging.models import MessagingChannel
from tests.messaging.conftest import SECRET, TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(db: None) -> Client:
    operator = User.objects.create_superuser(username="operator", email="op@example.com", password=None)
    client = Client()
    client.force_login(operator)
    return client


def _form(channel: MessagingChannel, **overrides: str) -> dict[str, str]:
    return {
        "enabled": "on" if channel.enabled else "",
        "base_url": channel.base_url,
        "sender_id": channel.sender_id,
        "timeout_seconds": str(channel.timeout_seconds),
        "allowed_hosts": ",".join(channel.allowed_hosts),
        "new_inbound_secret": "",
        "new_auth_token": "",
        **overrides,
    }


def test_the_pages_render_without_the_secrets(operator_client, sms_tenant):
    channel = MessagingChannel.objects.get(tenant=sms_tenant)
    for url in (
        "/admin/messaging/messagingchannel/",
        f"/admin/messaging/messagingchannel/{channel.pk}/change/",
        "/admin/messaging/messagingchannel/add/",
    ):
        page = operator_client.get(url)
        assert page.status_code == 200, url
        for secret in (SECRET, TOKEN, channel.inbound_secret, channel.auth_token):
            assert secret.encode() not in page.content


def test_a_new_secret_is_sealed_and_an_empty_field_keeps_the_old_one(operator_client, sms_tenant):
    channel = MessagingChannel.objects.get(tenant=sms_tenant)
    url = f"/admin/messaging/messagingchannel/{channel.pk}/change/"
    assert operator_client.post(url, _form(channel, new_inbound_secret="rotated-secret")).status_code == 302
    channel.refresh_from_db()
    assert unseal(channel.inbound_secret) == "rotated-secret"
    assert "rotated-secret" not in channel.inbound_secret
    assert unseal(channel.auth_token) == TOKEN


def test_a_host_off_the_allow_list_and_an_incomplete_channel_are_refused(
    operator_client, sms_tenant, make_tenant
):
    channel = MessagingChannel.objects.get(tenant=sms_tenant)
    url = f"/admin/messaging/messagingchannel/{channel.pk}/change/"
    before = (channel.base_url, channel.updated_at)
    off_list = operator_client.post(url, _form(channel, base_url="https://sms.evil.example/v1"))
    assert off_list.status_code == 200
    assert b"Add this URL&#x27;s host to the allowed hosts first." in off_list.content
    channel.refresh_from_db()
    assert (channel.base_url, channel.updated_at) == before
    other = make_tenant(name="Globex")
    incomplete = operator_client.post(
        "/admin/messaging/messagingchannel/add/",
        {**_form(channel, allowed_hosts=""), "tenant": str(other.pk), "base_url": "", "enabled": "on"},
    )
    assert incomplete.status_code == 200
    assert b"To turn the channel on, give the provider" in incomplete.content
    assert not MessagingChannel.objects.filter(tenant=other).exists()
