"""Admin pages of the human side (reports, handoff settings) and the reports' API."""

from django.urls import path

from apps.handoff import report_apis, staff_views

urlpatterns = [
    path("staff/<slug:slug>/reports/", staff_views.reports, name="handoff-reports"),
    path("staff/<slug:slug>/handoff-settings/", staff_views.handoff_settings, name="handoff-settings"),
    path(
        "api/v1/tenants/<slug:slug>/reports/handoffs/",
        report_apis.HandoffReportApi.as_view(),
        name="api-report-handoffs",
    ),
]
