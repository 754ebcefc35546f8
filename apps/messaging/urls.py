from django.urls import path

from apps.messaging import apis

webhooks = "api/v1/channels/messaging/<slug:slug>"
staff = "api/v1/tenants/<slug:slug>"

urlpatterns = [
    path(f"{webhooks}/inbound", apis.InboundApi.as_view(), name="messaging-inbound"),
    path(f"{webhooks}/status", apis.StatusApi.as_view(), name="messaging-status"),
    path(f"{staff}/messaging/conversations/", apis.ChannelBadgesApi.as_view(), name="api-messaging-badges"),
]
