from django.contrib.auth import views as auth_views
from django.urls import path

from apps.accounts import apis, audit_apis, audit_views, views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("staff/", views.staff_home, name="staff-home"),
    path("staff/<slug:slug>/settings/", views.tenant_settings, name="tenant-settings"),
    path("staff/<slug:slug>/origins/add/", views.tenant_origin_add, name="tenant-origin-add"),
    path("staff/<slug:slug>/origins/remove/", views.tenant_origin_remove, name="tenant-origin-remove"),
    path("staff/<slug:slug>/secret/rotate/", views.tenant_secret_rotate, name="tenant-secret-rotate"),
    path("staff/<slug:slug>/assistant/", views.tenant_assistant, name="tenant-assistant"),
    path("staff/<slug:slug>/answers/", views.tenant_answers, name="tenant-answers"),
    path("staff/<slug:slug>/email/", views.tenant_email, name="tenant-email"),
    path("staff/<slug:slug>/audit/", audit_views.audit_trail, name="audit-trail"),
    path("api/v1/tenants/", apis.TenantListApi.as_view(), name="api-tenants"),
    path("api/v1/tenants/<slug:slug>/", apis.TenantDetailApi.as_view(), name="api-tenant"),
    path("api/v1/tenants/<slug:slug>/members/", apis.TenantMembersApi.as_view(), name="api-tenant-members"),
    path(
        "api/v1/tenants/<slug:slug>/audit/", audit_apis.AuditEventListApi.as_view(), name="api-tenant-audit"
    ),
    path(
        "api/v1/tenants/<slug:slug>/identity-secret/rotate/",
        apis.TenantSecretRotateApi.as_view(),
        name="api-tenant-secret-rotate",
    ),
]
