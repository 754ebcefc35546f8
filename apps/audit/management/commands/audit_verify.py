"""`manage.py audit_verify [--tenant SLUG]`: recompute every hash and link of the audit chains; exit 1 and
name each problem when a row was edited, removed or inserted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.trail import chain_rows, chain_tenants, chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chains (all companies, or one)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this company's chain (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.apps import apps as django_apps

        tenants = chain_tenants()
        if options["tenant"]:
            tenant_model = django_apps.get_model("accounts", "Tenant")
            tenant = tenant_model.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No company has the slug {options['tenant']!r}.")
            tenants = [tenant.pk]
        problems = 0
        for tenant_id in tenants:
            rows = chain_rows(tenant_id).count()
            found = list(chain_verify(tenant_id=tenant_id))
            problems += len(found)
            for problem in found:
                self.stderr.write(str(problem))
            if not found:
                self.stdout.write(f"chain {tenant_id or 'system'}: {rows} rows, intact")
        if problems:
            raise CommandError(f"{problems} problem(s) found in the audit trail.")
