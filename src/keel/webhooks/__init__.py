"""Outgoing webhooks: signed, retried, and sent only where the workspace allows.

Events (``job.completed``, ``approval.requested``, …) go to the endpoints that
keel.yaml names or ``keel webhook create`` registered, through a persisted outbox
(:mod:`keel.webhooks.outbox`), signed with HMAC-SHA256 (:mod:`keel.webhooks.signing`)
and checked against the egress policy after DNS resolution (:mod:`keel.webhooks.egress`).
"""

from __future__ import annotations

from keel.webhooks.config import EVENT_TYPES, Endpoint, WebhookSettings, webhook_settings
from keel.webhooks.egress import Destination, check_destination
from keel.webhooks.endpoints import create_endpoint, delete_endpoint, list_endpoints, settings_of
from keel.webhooks.outbox import deliver_due, emit, enqueue, flush, list_deliveries
from keel.webhooks.signing import SIGNATURE_HEADER, signature, verify

__all__ = [
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "Destination",
    "Endpoint",
    "WebhookSettings",
    "check_destination",
    "create_endpoint",
    "delete_endpoint",
    "deliver_due",
    "emit",
    "enqueue",
    "flush",
    "list_deliveries",
    "list_endpoints",
    "settings_of",
    "signature",
    "verify",
    "webhook_settings",
]
