from django.urls import path

from apps.knowledge import apis, views

api = "api/v1/tenants/<slug:slug>/kb"

urlpatterns = [
    path(f"{api}/documents/", apis.DocumentListApi.as_view(), name="api-kb-documents"),
    path(f"{api}/documents/<uuid:document_id>/", apis.DocumentDetailApi.as_view(), name="api-kb-document"),
    path(
        f"{api}/documents/<uuid:document_id>/versions/",
        apis.DocumentVersionUploadApi.as_view(),
        name="api-kb-document-versions",
    ),
    path(
        f"{api}/documents/<uuid:document_id>/rollback/",
        apis.DocumentRollbackApi.as_view(),
        name="api-kb-document-rollback",
    ),
    path(f"{api}/versions/<uuid:version_id>/", apis.VersionDetailApi.as_view(), name="api-kb-version"),
    path(f"{api}/versions/<uuid:version_id>/chunks/", apis.VersionChunksApi.as_view(), name="api-kb-chunks"),
    path(
        f"{api}/versions/<uuid:version_id>/publish/",
        apis.VersionActionApi.as_view(action="publish"),
        name="api-kb-publish",
    ),
    path(
        f"{api}/versions/<uuid:version_id>/redact/",
        apis.VersionActionApi.as_view(action="redact"),
        name="api-kb-redact",
    ),
    path(
        f"{api}/versions/<uuid:version_id>/retry/",
        apis.VersionActionApi.as_view(action="retry"),
        name="api-kb-retry",
    ),
    path(f"{api}/search/", apis.SearchApi.as_view(), name="api-kb-search"),
    path("staff/<slug:slug>/knowledge/", views.knowledge_home, name="kb-home"),
    path(
        "staff/<slug:slug>/knowledge/documents/<uuid:document_id>/", views.document_page, name="kb-document"
    ),
    path("staff/<slug:slug>/knowledge/versions/<uuid:version_id>/", views.version_page, name="kb-version"),
    path("staff/<slug:slug>/knowledge/search/", views.search_page, name="kb-search"),
    path("staff/<slug:slug>/knowledge/gaps/", views.gaps_page, name="kb-gaps"),
    path(f"{api}/gaps/", apis.GapListApi.as_view(), name="api-kb-gaps"),
    path(f"{api}/gaps/<uuid:gap_id>/resolve/", apis.GapResolveApi.as_view(), name="api-kb-gap-resolve"),
]
