from django.urls import path

from apps.conversations import apis, views

widget = "api/widget/v1"
staff = "api/v1/tenants/<slug:slug>"

urlpatterns = [
    path(f"{widget}/session", apis.WidgetSessionApi.as_view(), name="widget-session"),
    path(f"{widget}/session/end", apis.WidgetSessionEndApi.as_view(), name="widget-session-end"),
    path(
        f"{widget}/identity/sign-out",
        apis.WidgetIdentitySignOutApi.as_view(),
        name="widget-identity-sign-out",
    ),
    path(f"{widget}/events", apis.WidgetEventsApi.as_view(), name="widget-events"),
    path(f"{widget}/passages/<str:chunk_id>", apis.WidgetPassageApi.as_view(), name="widget-passage"),
    path(f"{staff}/conversations/", apis.ConversationListApi.as_view(), name="api-conversations"),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/",
        apis.ConversationDetailApi.as_view(),
        name="api-conversation",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/messages/<uuid:message_id>/trace/",
        apis.MessageTraceApi.as_view(),
        name="api-message-trace",
    ),
    path(
        f"{staff}/conversations/<uuid:conversation_id>/deliveries/",
        apis.ConversationDeliveriesApi.as_view(),
        name="api-conversation-deliveries",
    ),
    path("widget.js", views.widget_script, name="widget-script"),
    path("demo/", views.demo_host, name="widget-demo"),
]
