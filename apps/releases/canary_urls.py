"""URLs of the releases app's canary part: the models page's canary forms and the canaries API."""

from django.urls import URLPattern, path

from apps.releases import canary_apis, canary_views

api = "api/v1/tenants/<slug:slug>/canaries"

urlpatterns: list[URLPattern] = [
    path("staff/<slug:slug>/models/canary/", canary_views.canary_start_view, name="releases-canary-start"),
    path(
        "staff/<slug:slug>/models/canary/<uuid:canary_id>/promote/",
        canary_views.canary_promote_view,
        name="releases-canary-promote",
    ),
    path(
        "staff/<slug:slug>/models/canary/<uuid:canary_id>/stop/",
        canary_views.canary_cancel_view,
        name="releases-canary-stop",
    ),
    path(f"{api}/", canary_apis.CanaryListApi.as_view(), name="api-canaries"),
    path(f"{api}/<uuid:canary_id>/", canary_apis.CanaryApi.as_view(), name="api-canary"),
    path(
        f"{api}/<uuid:canary_id>/promote/", canary_apis.CanaryPromoteApi.as_view(), name="api-canary-promote"
    ),
    path(f"{api}/<uuid:canary_id>/stop/", canary_apis.CanaryStopApi.as_view(), name="api-canary-stop"),
]
