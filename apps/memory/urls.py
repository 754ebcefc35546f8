from django.urls import path

from apps.memory import apis

widget = "api/widget/v1"

urlpatterns = [
    path(f"{widget}/memory", apis.MemoryApi.as_view(), name="widget-memory"),
    path(f"{widget}/memory/consent", apis.MemoryConsentApi.as_view(), name="widget-memory-consent"),
    path(f"{widget}/memory/facts", apis.MemoryFactsApi.as_view(), name="widget-memory-facts"),
    path(f"{widget}/memory/facts/<str:fact_id>", apis.MemoryFactApi.as_view(), name="widget-memory-fact"),
]
