# One concept of channel (docs/architecture/channels.md): Conversation.channel and Message.via hold
# registered channel names without database choices; a message's "chat" becomes "widget".

import django.db.models.deletion
import uuid
from django.db import migrations, models


def via_chat_to_widget(apps, schema_editor):
    Message = apps.get_model("conversations", "Message")
    Message.objects.filter(via="chat").update(via="widget")


def via_widget_to_chat(apps, schema_editor):
    Message = apps.get_model("conversations", "Message")
    Message.objects.filter(via="widget").update(via="chat")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0006_tenant_answer_settings'),
        ('conversations', '0004_cached_answer'),
    ]

    operations = [
        migrations.AlterField(
            model_name='conversation',
            name='channel',
            field=models.CharField(default='widget', max_length=16),
        ),
        migrations.AddField(
            model_name='conversation',
            name='channel_key',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='conversation',
            name='channel_address',
            field=models.CharField(blank=True, default='', max_length=254),
        ),
        migrations.AlterField(
            model_name='message',
            name='via',
            field=models.CharField(default='widget', max_length=16),
        ),
        migrations.AddField(
            model_name='message',
            name='external_id',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddConstraint(
            model_name='conversation',
            constraint=models.UniqueConstraint(condition=models.Q(('channel_key', ''), _negated=True), fields=('tenant', 'channel', 'channel_key'), name='uniq_conversation_channel_key'),
        ),
        migrations.AddConstraint(
            model_name='message',
            constraint=models.UniqueConstraint(condition=models.Q(('external_id', ''), _negated=True), fields=('tenant', 'via', 'external_id'), name='uniq_message_channel_external_id'),
        ),
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('channel', models.CharField(max_length=16)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('sent', 'Sent'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='queued', max_length=16)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('last_error', models.CharField(blank=True, default='', max_length=300)),
                ('provider_message_id', models.CharField(blank=True, default='', max_length=200)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='conversations.message')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'ordering': ['created_at'],
                'indexes': [models.Index(condition=models.Q(('provider_message_id', ''), _negated=True), fields=['tenant', 'channel', 'provider_message_id'], name='delivery_provider_id_idx'), models.Index(condition=models.Q(('status', 'queued')), fields=['status', 'next_attempt_at'], name='delivery_queued_idx')],
                'constraints': [models.UniqueConstraint(fields=('message', 'channel'), name='uniq_delivery_message_channel'), models.CheckConstraint(condition=models.Q(('status__in', ['queued', 'sent', 'delivered', 'failed'])), name='delivery_status_valid')],
            },
        ),
        migrations.RunPython(via_chat_to_widget, via_widget_to_chat, elidable=False),
    ]
