from django.urls import path

from apps.tools import apis, views

api = "api/v1/tenants/<slug:slug>"

urlpatterns = [
    path(f"{api}/tools/", apis.ToolListApi.as_view(), name="api-tools"),
    # Before `tools/<name>/`: "connection" is not a tool.
    path(f"{api}/tools/connection/", apis.ToolConnectionApi.as_view(), name="api-tool-connection"),
    path(f"{api}/tools/<str:name>/", apis.ToolDetailApi.as_view(), name="api-tool"),
    path(f"{api}/tool-runs/", apis.ToolRunListApi.as_view(), name="api-tool-runs"),
    path(
        f"{api}/tool-runs/<uuid:run_id>/decision/",
        apis.ToolRunDecisionApi.as_view(),
        name="api-tool-run-decision",
    ),
    path("staff/<slug:slug>/tools/", views.tools_page, name="tools-home"),
]
