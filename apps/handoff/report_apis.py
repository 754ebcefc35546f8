"""REST API of the admins' reports: the numbers behind the charts, per day in the company's time zone."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest
from apps.handoff.reports import DEFAULT_DAYS, PERIODS, handoff_report


class DayOutput(serializers.Serializer[Any]):
    day = serializers.DateField()
    conversations = serializers.IntegerField()
    handoffs = serializers.IntegerField()
    by_reason = serializers.DictField(child=serializers.IntegerField(), help_text="Handoffs per reason.")
    rate = serializers.FloatField(allow_null=True, help_text="Handoffs / conversations started that day.")
    claimed = serializers.IntegerField(help_text="Live-queue handoffs claimed (take-overs excluded).")
    claim_p50_seconds = serializers.FloatField(allow_null=True)
    claim_p90_seconds = serializers.FloatField(allow_null=True)
    csat_count = serializers.IntegerField()
    csat_average = serializers.FloatField(allow_null=True)


class ReasonOutput(serializers.Serializer[Any]):
    reason = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not the form label
    count = serializers.IntegerField()
    share = serializers.FloatField()


class TotalsOutput(serializers.Serializer[Any]):
    conversations = serializers.IntegerField()
    handoffs = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    claimed = serializers.IntegerField()
    unclaimed = serializers.IntegerField()
    after_hours = serializers.IntegerField()
    claim_p50_seconds = serializers.FloatField(allow_null=True)
    claim_p90_seconds = serializers.FloatField(allow_null=True)
    csat_count = serializers.IntegerField()
    csat_average = serializers.FloatField(allow_null=True)
    csat_satisfied = serializers.FloatField(allow_null=True, help_text="Share of ratings of 4 or 5.")
    csat_distribution = serializers.DictField(child=serializers.IntegerField(), help_text="Score 1..5.")


class HandoffReportOutput(serializers.Serializer[Any]):
    days = serializers.IntegerField()
    timezone = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    series = DayOutput(many=True)
    reasons = ReasonOutput(many=True)
    totals = TotalsOutput()


class HandoffReportApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "days", int, required=False, enum=list(PERIODS), description=f"Default {DEFAULT_DAYS}."
            )
        ],
        responses={200: HandoffReportOutput},
        summary="Handoffs by reason, time to claim and CSAT per day (admins)",
        description="Every day of the period (today included) in the company's time zone, with zeros; "
        "time to claim counts handoffs queued while people could answer live.",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        raw = request.query_params.get("days", str(DEFAULT_DAYS))
        if raw not in {str(p) for p in PERIODS}:
            raise BadRequest(f"days is one of {', '.join(str(p) for p in PERIODS)}.")
        return Response(handoff_report(tenant=tenant, days=int(raw)).as_dict())
