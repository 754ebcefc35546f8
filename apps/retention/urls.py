from django.urls import path

from apps.retention import apis, views

urlpatterns = [
    path("api/v1/tenants/<slug:slug>/retention/", apis.RetentionPolicyApi.as_view(), name="api-retention"),
    path("staff/<slug:slug>/retention/", views.retention_settings, name="retention-settings"),
]
