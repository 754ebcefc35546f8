from django.urls import path

from apps.audit import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
