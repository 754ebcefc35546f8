"""Identity secrets sealed at rest (like API secrets), and the epochs that end verified widget sessions."""

from django.db import migrations, models

import apps.accounts.models


def seal_existing(apps, schema_editor):
    from apps.core.sealing import PREFIX, seal

    Tenant = apps.get_model("accounts", "Tenant")
    for tenant in Tenant.objects.only("id", "identity_secret_sealed"):
        if tenant.identity_secret_sealed and not tenant.identity_secret_sealed.startswith(PREFIX):
            tenant.identity_secret_sealed = seal(tenant.identity_secret_sealed)
            tenant.save(update_fields=["identity_secret_sealed"])


def unseal_existing(apps, schema_editor):
    from apps.core.sealing import unseal

    Tenant = apps.get_model("accounts", "Tenant")
    for tenant in Tenant.objects.only("id", "identity_secret_sealed"):
        tenant.identity_secret_sealed = unseal(tenant.identity_secret_sealed)
        tenant.save(update_fields=["identity_secret_sealed"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_contact_tier"),
    ]

    operations = [
        migrations.RenameField(
            model_name="tenant", old_name="identity_secret", new_name="identity_secret_sealed"
        ),
        migrations.AlterField(
            model_name="tenant",
            name="identity_secret_sealed",
            field=models.CharField(
                db_column="identity_secret",
                default=apps.accounts.models.new_sealed_identity_secret,
                editable=False,
                max_length=512,
            ),
        ),
        migrations.RunPython(seal_existing, unseal_existing),
        migrations.AddField(
            model_name="tenant",
            name="identity_epoch",
            field=models.PositiveIntegerField(default=1, editable=False),
        ),
        migrations.AddField(
            model_name="contact",
            name="session_epoch",
            field=models.PositiveIntegerField(default=1, editable=False),
        ),
    ]
