from django.urls import include, path

from apps.handoff import apis, views

staff = "api/v1/tenants/<slug:slug>"

urlpatterns = [
    path("staff/<slug:slug>/console/", views.console, name="handoff-console"),
    path("", include("apps.handoff.staff_urls")),
    path(f"{staff}/handoffs/", apis.QueueApi.as_view(), name="api-handoffs"),
    path(f"{staff}/handoffs/<uuid:handoff_id>/", apis.HandoffDetailApi.as_view(), name="api-handoff"),
    path(
        f"{staff}/handoffs/<uuid:handoff_id>/claim/", apis.HandoffClaimApi.as_view(), name="api-handoff-claim"
    ),
    path(
        f"{staff}/handoffs/<uuid:handoff_id>/case-file/",
        apis.CaseFileApi.as_view(),
        name="api-handoff-case-file",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/timeline/",
        apis.TimelineApi.as_view(),
        name="api-conversation-timeline",
    ),
    path(
        f"{staff}/contacts/<uuid:contact_id>/timeline/",
        apis.ContactTimelineApi.as_view(),
        name="api-contact-timeline",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/take-over/",
        apis.TakeOverApi.as_view(),
        name="api-conversation-take-over",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/transfer/",
        apis.TransferApi.as_view(),
        name="api-conversation-transfer",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/hand-back/",
        apis.HandBackApi.as_view(),
        name="api-conversation-hand-back",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/resolve/",
        apis.ResolveApi.as_view(),
        name="api-conversation-resolve",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/replies/",
        apis.ReplyApi.as_view(),
        name="api-conversation-replies",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/notes/",
        apis.NoteApi.as_view(),
        name="api-conversation-notes",
    ),
    path(f"{staff}/canned-responses/", apis.CannedListApi.as_view(), name="api-canned-responses"),
    path(
        f"{staff}/canned-responses/<uuid:canned_id>/",
        apis.CannedDetailApi.as_view(),
        name="api-canned-response",
    ),
    path(f"{staff}/presence/", apis.PresenceApi.as_view(), name="api-presence"),
    path(f"{staff}/tickets/", apis.TicketListApi.as_view(), name="api-tickets"),
    path(f"{staff}/handoff-settings/", apis.HandoffSettingsApi.as_view(), name="api-handoff-settings"),
    path(f"{staff}/handoff-rules/", apis.RuleListApi.as_view(), name="api-handoff-rules"),
    path(f"{staff}/handoff-rules/<uuid:rule_id>/", apis.RuleDetailApi.as_view(), name="api-handoff-rule"),
    path(f"{staff}/teams/", apis.TeamListApi.as_view(), name="api-teams"),
    path("api/v1/inbound-email/", apis.InboundEmailApi.as_view(), name="api-inbound-email"),
]
