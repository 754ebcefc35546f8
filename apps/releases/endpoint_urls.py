"""URLs of the releases app's endpoint part: the models page and the model endpoints API."""

from django.urls import URLPattern, path

from apps.releases import endpoint_apis, endpoint_views

api = "api/v1/tenants/<slug:slug>/model-endpoints"

urlpatterns: list[URLPattern] = [
    path("staff/<slug:slug>/models/", endpoint_views.models_page, name="releases-models"),
    path(
        "staff/<slug:slug>/models/endpoints/",
        endpoint_views.model_endpoint_register,
        name="releases-model-endpoint-register",
    ),
    path(
        "staff/<slug:slug>/models/endpoints/<uuid:endpoint_id>/delete/",
        endpoint_views.model_endpoint_delete,
        name="releases-model-endpoint-delete",
    ),
    path(f"{api}/", endpoint_apis.ModelEndpointListApi.as_view(), name="api-model-endpoints"),
    path(f"{api}/<uuid:endpoint_id>/", endpoint_apis.ModelEndpointApi.as_view(), name="api-model-endpoint"),
]
