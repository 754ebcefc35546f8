"""Django admin for platform operators (superusers). Tenant staff use the staff pages and the API."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts import services
from apps.accounts.models import AllowedOrigin, Contact, Membership, Tenant, User
from apps.core.errors import HelpdeskError


class AllowedOriginForm(forms.ModelForm[AllowedOrigin]):
    """The admin applies the same normalisation as every other path that stores an origin."""

    class Meta:
        model = AllowedOrigin
        fields = ["origin"]

    def clean_origin(self) -> str:
        try:
            return services.normalize_origin(self.cleaned_data["origin"])
        except HelpdeskError as exc:
            raise forms.ValidationError(exc.message) from exc


class TenantForm(forms.ModelForm[Tenant]):
    class Meta:
        model = Tenant
        fields = ["name", "slug", "is_active"]

    def clean_slug(self) -> str:
        try:
            return services.validate_slug(self.cleaned_data["slug"])
        except HelpdeskError as exc:
            raise forms.ValidationError(exc.message) from exc


class AllowedOriginInline(admin.TabularInline[AllowedOrigin, Tenant]):
    model = AllowedOrigin
    form = AllowedOriginForm
    extra = 1
    fields = ["origin"]


class MembershipInline(admin.TabularInline[Membership, Tenant]):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    fields = ["user", "role"]


def _operator(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _role_save(request: HttpRequest, membership: Membership, *, change: bool) -> None:
    """A role given in the admin is audited like any other grant (apps.accounts.actions); a changed row is
    the old role revoked and the new one granted."""
    actor = _operator(request)
    if change:
        old = Membership.objects.select_related("tenant", "user").get(pk=membership.pk)
        if (old.tenant_id, old.user_id, old.role) == (
            membership.tenant_id,
            membership.user_id,
            membership.role,
        ):
            return
        services.membership_revoke(tenant=old.tenant, user=old.user, role=old.role, actor=actor)
    granted = services.membership_grant(
        tenant=membership.tenant, user=membership.user, role=membership.role, actor=actor
    )
    membership.pk = granted.pk
    membership._state.adding = False


def _role_delete(request: HttpRequest, membership: Membership) -> None:
    services.membership_revoke(
        tenant=membership.tenant, user=membership.user, role=membership.role, actor=_operator(request)
    )


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    form = TenantForm
    list_display = ["name", "slug", "widget_key", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug", "widget_key"]
    readonly_fields = ["widget_key", "created_at", "updated_at"]
    fields = ["name", "slug", "is_active", "widget_key", "created_at", "updated_at"]
    inlines = [AllowedOriginInline, MembershipInline]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        memberships = formset.save(commit=False)
        for membership in formset.deleted_objects:
            _role_delete(request, membership)
        for membership in memberships:
            _role_save(request, membership, change=not membership._state.adding)


@admin.register(User)
class HelpdeskUserAdmin(UserAdmin):
    list_display = ["username", "email", "first_name", "is_staff", "is_superuser", "is_active"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    autocomplete_fields = ["user", "tenant"]

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        _role_save(request, obj, change=change)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        _role_delete(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("tenant", "user"):
            _role_delete(request, membership)


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin[Contact]):
    list_display = ["external_id", "name", "email", "tenant", "signed_out_at", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["external_id", "name", "email"]
    autocomplete_fields = ["tenant"]
    readonly_fields = ["signed_out_at"]
    actions = ["sign_out_everywhere"]

    @admin.action(description="Sign out of the chat widget everywhere")
    def sign_out_everywhere(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        actor = request.user if isinstance(request.user, User) else None
        for contact in queryset:
            services.contact_sessions_revoke(contact=contact, proofs_too=True, actor=actor)
        self.message_user(
            request,
            f"{queryset.count()} customer(s) signed out of the chat widget on every device; pages "
            "that were open must sign them in again with a new identity.",
        )
