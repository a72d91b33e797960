"""The contract between whatever produces alerts (``hunt``, ``watch``) and the places alerts are delivered to.

Delivery is at-least-once from the producer and exactly-once at the sink: a producer that cannot tell whether a
batch arrived (it was killed mid-delivery, a webhook timed out) delivers the same batch again, and every sink
recognizes a batch it already holds by its key and keeps one copy. So the key must be a pure function of the
batch's content: :func:`batch_key` derives it from the alert ids.

An alert with alert suppression is delivered again, whole, each time a later run folds more events into it. Each
delivery is a *revision* of the alert, told apart by ``kibana.alert.suppression.docs_count``: :func:`revision` names
one, and :func:`revision_key` keys a batch of revisions so that it never collides with the batch that created the
alert. An append-only sink holds each revision once; the one with the largest ``docs_count`` is current.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

ALERT_ID = "kibana.alert.uuid"
DOCS_COUNT = "kibana.alert.suppression.docs_count"
"""How many events a suppressed alert stands for: what tells revisions of one alert apart."""


class AlertBatch(NamedTuple):
    """Alerts delivered together, and the idempotency key that names them."""

    key: str
    alerts: tuple[Mapping[str, Any], ...]


def batch_key(alerts: Sequence[Mapping[str, Any]]) -> str:
    """A key that is the same for the same alerts in the same order, and differs otherwise (SHA-256 of the ids)."""
    digest = hashlib.sha256()
    for alert in alerts:
        digest.update(str(alert[ALERT_ID]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def make_batch(alerts: Sequence[Mapping[str, Any]]) -> AlertBatch:
    """A batch of ``alerts`` with its key."""
    return AlertBatch(batch_key(alerts), tuple(alerts))


def revision(alert: Mapping[str, Any]) -> str:
    """The identity of one revision of an alert: its id, and ``docs_count`` for a suppressed alert."""
    alert_id = str(alert[ALERT_ID])
    count = alert.get(DOCS_COUNT)
    return alert_id if count is None else f"{alert_id}#{count}"


def revision_key(alerts: Sequence[Mapping[str, Any]]) -> str:
    """A batch key that tells revisions of one alert apart: SHA-256 of each alert's id and ``docs_count``.

    Alerts without suppression fields give :func:`batch_key`'s key, unchanged.
    """
    if not any(DOCS_COUNT in alert for alert in alerts):
        return batch_key(alerts)
    digest = hashlib.sha256()
    for alert in alerts:
        digest.update(f"{alert[ALERT_ID]}\x00{alert.get(DOCS_COUNT)}\n".encode())
    return digest.hexdigest()


def revision_batch(alerts: Sequence[Mapping[str, Any]]) -> AlertBatch:
    """A batch of alerts, some of them perhaps revisions of alerts delivered before, keyed by :func:`revision_key`."""
    return AlertBatch(revision_key(alerts), tuple(alerts))


class SinkError(Exception):
    """A sink cannot take alerts and cannot keep them for later either (say, its spool folder is not writable)."""


class AlertSink(Protocol):
    """A destination for alerts."""

    @property
    def name(self) -> str:
        """What the sink is, for messages: ``ndjson:/var/log/alerts.ndjson``, ``webhook:https://...``."""
        ...

    def deliver(self, batch: AlertBatch) -> None:
        """Return once the batch is durable: written and fsynced, acknowledged by the receiver, or spooled to disk
        to be sent later. Delivering a batch the sink already holds (same key) changes nothing. Raises
        :class:`SinkError` only when the batch could be neither delivered nor kept."""
        ...

    def flush(self, timeout: float | None = None) -> int:
        """Try to send what the sink keeps for later, for at most ``timeout`` seconds; the batches still pending."""
        ...

    def close(self) -> None:
        """Release files and connections; pending batches stay spooled for the next run."""
        ...
