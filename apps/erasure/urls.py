from django.urls import path

from apps.erasure import apis

staff = "api/v1/tenants/<slug:slug>"

urlpatterns = [
    path(f"{staff}/erasures/", apis.ErasureListApi.as_view(), name="api-erasures"),
    path(f"{staff}/erasures/<str:erasure_id>/", apis.ErasureDetailApi.as_view(), name="api-erasure"),
]
