"""The releases app's pages and APIs: each part keeps its own list."""

from apps.releases import canary_urls, endpoint_urls, gate_urls, golden_urls

urlpatterns = [
    *golden_urls.urlpatterns,
    *gate_urls.urlpatterns,
    *endpoint_urls.urlpatterns,
    *canary_urls.urlpatterns,
]
