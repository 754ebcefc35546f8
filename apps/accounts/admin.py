"""Django admin for platform operators (superusers). Tenant staff use the staff pages and the API."""

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


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    form = TenantForm
    list_display = ["name", "slug", "widget_key", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug", "widget_key"]
    readonly_fields = ["widget_key", "created_at", "updated_at"]
    fields = ["name", "slug", "is_active", "widget_key", "created_at", "updated_at"]
    inlines = [AllowedOriginInline, MembershipInline]


@admin.register(User)
class HelpdeskUserAdmin(UserAdmin):
    list_display = ["username", "email", "first_name", "is_staff", "is_superuser", "is_active"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    autocomplete_fields = ["user", "tenant"]


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
        for contact in queryset:
            services.contact_sessions_revoke(contact=contact, proofs_too=True)
        self.message_user(
            request,
            f"{queryset.count()} customer(s) signed out of the chat widget on every device; pages "
            "that were open must sign them in again with a new identity.",
        )
