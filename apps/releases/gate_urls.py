"""URLs of the releases app's gate part: a knowledge change held for its golden answers."""

from django.urls import path

from apps.releases import gate_apis, gate_views

api = "api/v1/tenants/<slug:slug>/kb/changes/<uuid:change_id>"

urlpatterns = [
    path("staff/<slug:slug>/knowledge/changes/<uuid:change_id>/", gate_views.change_page, name="kb-change"),
    path(
        "staff/<slug:slug>/knowledge/changes/<uuid:change_id>/progress/",
        gate_views.change_progress_json,
        name="kb-change-progress",
    ),
    path(f"{api}/", gate_apis.ChangeDetailApi.as_view(), name="api-kb-change"),
    path(
        f"{api}/confirm/",
        gate_apis.ChangeDecisionApi.as_view(decision="confirm"),
        name="api-kb-change-confirm",
    ),
    path(
        f"{api}/cancel/", gate_apis.ChangeDecisionApi.as_view(decision="cancel"), name="api-kb-change-cancel"
    ),
]
