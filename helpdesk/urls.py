from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

handler404 = "apps.core.middleware.page_not_found"

urlpatterns = [
    path("", RedirectView.as_view(url="/staff/", permanent=False)),
    path("", include("apps.core.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.knowledge.urls")),
    path("", include("apps.tools.urls")),
    path("", include("apps.conversations.urls")),
    path("", include("apps.voice.urls")),
    path("", include("apps.memory.urls")),
    path("", include("apps.handoff.urls")),
    path("", include("apps.messaging.urls")),
    path("", include("apps.releases.urls")),
    path("", include("apps.demo.urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.retention.urls")),
    path("", include("apps.erasure.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("admin/", admin.site.urls),
]
