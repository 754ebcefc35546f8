"""URLs of the releases app's golden part: the editors' pages and the REST API."""

from django.urls import path

from apps.releases import golden_apis, golden_views

api = "api/v1/tenants/<slug:slug>/golden"
staff = "staff/<slug:slug>/golden"

urlpatterns = [
    path(f"{staff}/", golden_views.golden_home, name="golden-home"),
    path(f"{staff}/new/", golden_views.golden_question_new, name="golden-new"),
    path(f"{staff}/questions/<uuid:question_id>/", golden_views.golden_question_page, name="golden-question"),
    path(f"{staff}/runs/<uuid:run_id>/", golden_views.golden_run_page, name="golden-run"),
    path(f"{api}/questions/", golden_apis.GoldenQuestionListApi.as_view(), name="api-golden-questions"),
    path(
        f"{api}/questions/<uuid:question_id>/",
        golden_apis.GoldenQuestionDetailApi.as_view(),
        name="api-golden-question",
    ),
    path(f"{api}/runs/", golden_apis.GoldenRunListApi.as_view(), name="api-golden-runs"),
    path(f"{api}/runs/<uuid:run_id>/", golden_apis.GoldenRunDetailApi.as_view(), name="api-golden-run"),
]
