"""Alert batches POSTed to a webhook, with retries, backoff and a disk spool, so that no alert is lost.

Each batch is one request: ``POST <url>`` with the body ``{"batch_key": ..., "alerts": [...]}`` (application/json)
and the header ``Idempotency-Key: <batch key>``, so a receiver that keeps the keys it has seen can drop a batch sent
twice. Sending twice is how this sink stays safe: a batch the receiver did not acknowledge with a 2xx is sent again
until it is, and a receiver that took the body but failed before answering sees it again.

What happens to a batch:

- 2xx: acknowledged, done.
- Connection errors, timeouts, 408, 425, 429 and 5xx: transient. The sink retries with exponential backoff and
  jitter, and never sooner than a ``Retry-After`` the receiver asked for. A batch still not taken after
  ``max_attempts`` goes to the spool (:mod:`shellwatch.sinks.spool`), and while the spool holds batches, new ones
  join it behind them, so the receiver gets batches oldest first. The spool is sent by :meth:`WebhookSink.flush`, by
  the next :meth:`WebhookSink.deliver`, and by the next sink opened on the same folder (after a restart).
- 401, 403, 404 and 413: the receiver refuses every batch until someone changes its side or ours (credentials
  rotated, an endpoint moved, a body limit). These are held, not rejected: the batch stays in the spool, in order,
  and is retried with backoff (up to ``max_backoff`` apart) until the receiver takes it; each refusal is logged with
  what to check. Rejecting them would send every later batch to ``rejected/`` too, where nothing resends them.
- Any other 4xx, and a redirect elsewhere: a permanent refusal of this one batch (the request is wrong, not the
  moment). Sending it again would fail the same way, so the batch is kept in the spool's ``rejected/`` folder with
  the reason, and logged; never dropped.

Only 307 and 308 redirects to the same scheme, host and port are followed (they keep the method and the body); a
redirect anywhere else would carry the alerts, and maybe credentials, to a host nobody configured.

The URL may carry credentials (``https://user:secret@host/hook?token=...``): userinfo becomes a Basic
``Authorization`` header, and neither it nor query values ever appear in :attr:`WebhookSink.name`, in log lines or
in exception messages. TLS certificates and host names are verified unless the caller passes its own SSL context.
"""

from __future__ import annotations

import base64
import http.client
import logging
import random
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

import orjson

from shellwatch.sinks.base import AlertBatch, SinkError
from shellwatch.sinks.spool import BATCH_KEY, DEFAULT_SPOOL_LIMIT, Spool, SpooledBatch

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for the connection, and for each read of the answer."""
DEFAULT_MAX_ATTEMPTS = 3
"""Requests for one batch in one :meth:`WebhookSink.deliver` before it is spooled."""
DEFAULT_BACKOFF = 0.5
"""Seconds before the first retry; each further failure doubles it (with jitter), up to ``max_backoff``."""
DEFAULT_MAX_BACKOFF = 30.0
"""The longest pause between retries; a longer ``Retry-After`` sends the batch to the spool instead of waiting."""
MAX_RETRY_AFTER = 3600.0
"""A ``Retry-After`` beyond an hour is taken as an hour: alerts should not sit in a spool for days on one header."""
MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 64 * 1024
"""The receiver's answer is read up to this much and ignored; only its status counts."""
RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""4xx statuses that mean "not now" rather than "never" (RFC 9110 §15.5.9, RFC 8470 §5.2, RFC 6585 §4)."""
HELD_STATUSES = frozenset({401, 403, 404, 413})
"""4xx statuses that refuse every batch alike until a configuration changes (credentials, the endpoint's path, a
body size limit): batches wait in the spool, retried with backoff, instead of going to ``rejected/`` one by one."""
_HELD_ADVICE = {
    401: "check the webhook's credentials",
    403: "check the webhook's credentials and permissions",
    404: "check the webhook's URL path",
    413: "raise the receiver's request size limit",
}
_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""How a kept-alive connection that the receiver closed while it was idle fails (a timeout is not one of them)."""
_ACKNOWLEDGED_MEMORY = 10_000
"""Keys of recently acknowledged batches kept to skip re-sending them; older ones are just sent again (harmless)."""


@dataclass(frozen=True)
class WebhookTarget:
    """The parts of a webhook URL: where to connect, what to send, and how to show it."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    path: str
    """Path and query, as sent in the request line."""
    authorization: str | None
    """A Basic ``Authorization`` value built from the URL's userinfo, if it had one."""
    display: str
    """The URL without userinfo, fragment or query values: safe to print."""

    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host.lower(), self.port


def receiver_identity(url: str) -> str:
    """What names a webhook's receiver across credential changes: scheme, host, port, path and the names of the
    query parameters, without userinfo or query values (tokens rotate, the receiver stays). ``ValueError`` (with the
    URL redacted) when ``url`` is no http(s) URL."""
    target = parse_target(url)
    path, _, _ = target.path.partition("?")
    query = urlsplit(redact_url(url)).query
    return f"{target.scheme}://{target.host.lower()}:{target.port}{path}" + (f"?{query}" if query else "")


def redact_url(url: str) -> str:
    """``url`` without userinfo and fragment, its query values replaced by ``***``: safe for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    query = "&".join(f"{name}=***" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def parse_target(url: str) -> WebhookTarget:
    """The :class:`WebhookTarget` of an http or https URL; ``ValueError`` (with the URL redacted) otherwise."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"webhook URL {shown} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"webhook URL {shown} must use http or https")
    if not parts.hostname:
        raise ValueError(f"webhook URL {shown} has no host")
    authorization = None
    if parts.username is not None or parts.password is not None:
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(
        scheme="https" if scheme == "https" else "http",
        host=parts.hostname,
        port=port if port is not None else (443 if scheme == "https" else 80),
        path=path,
        authorization=authorization,
        display=shown,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date, RFC 9110 §10.2.3), at most
    :data:`MAX_RETRY_AFTER`; ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT even when written with "-0000"
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _json_default(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def encode_batch(batch: AlertBatch) -> bytes:
    """The request body of a batch: ``{"batch_key": ..., "alerts": [...]}``."""
    return orjson.dumps({"batch_key": batch.key, "alerts": list(batch.alerts)}, default=_json_default)


@dataclass(frozen=True)
class _Answer:
    """What one batch's sending came to."""

    outcome: Literal["acknowledged", "retry", "held", "rejected"]
    """``retry``: not now, try again soon; ``held``: refused until a configuration changes (kept in order, retried
    with backoff); ``rejected``: this batch is refused for good."""
    reason: str = ""
    retry_after: float | None = None


@dataclass
class WebhookStats:
    """Counts over a sink's life, for a run's summary."""

    requests: int = 0
    """POST attempts, retries included (an attempt may fail before the receiver sees it)."""
    acknowledged: int = 0
    """Batches the receiver answered with 2xx."""
    failures: int = 0
    """Requests that failed for the moment (connection error, timeout, 408/425/429/5xx, and the refusals
    401/403/404/413 that hold the spool)."""
    spooled: int = 0
    """Batches written to the spool to be sent later."""
    rejected: int = 0
    """Batches the receiver refused for good, kept in ``rejected/``."""


class WebhookSink:
    """An :class:`~shellwatch.sinks.base.AlertSink` that POSTs batches to ``url`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        spool_dir: Path | str,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        headers: Mapping[str, str] | None = None,
        spool_limit: int = DEFAULT_SPOOL_LIMIT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if timeout <= 0 or max_attempts < 1 or backoff < 0 or max_backoff < backoff:
            raise ValueError(
                "webhook needs timeout > 0, max_attempts >= 1 and 0 <= backoff <= max_backoff, not "
                f"timeout={timeout}, max_attempts={max_attempts}, backoff={backoff}, max_backoff={max_backoff}"
            )
        self._target = parse_target(url)
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._headers = self._request_headers(headers or {})
        self._ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._spool = Spool(spool_dir, max_bytes=spool_limit)
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.RLock()
        self._acknowledged: OrderedDict[str, None] = OrderedDict()
        self._failures = 0
        self._backoff_until = 0.0
        """Monotonic time before which this sink does not try again on its own (its backoff)."""
        self._receiver_wait_until = 0.0
        """Monotonic time before which the receiver asked not to be sent anything (``Retry-After``)."""
        self._held_reason = ""
        """The reason of the last refusal that holds the spool (logged again only when it changes)."""
        self._closed = False
        self.stats = WebhookStats()

    def _request_headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "shellwatch"}
        if self._target.authorization is not None:
            headers["Authorization"] = self._target.authorization
        for header, value in extra.items():
            if any(char in header + value for char in "\r\n\0"):
                raise ValueError(f"webhook header {header[:40]!r} contains a line break or NUL")
            headers[header] = value
        return headers

    @property
    def name(self) -> str:
        """``webhook:`` and the URL without credentials or query values."""
        return f"webhook:{self._target.display}"

    @property
    def spool(self) -> Spool:
        """The spool folder's batches (pending and rejected), for status displays."""
        return self._spool

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- the AlertSink protocol -------------------------------------------------------------------------------

    def deliver(self, batch: AlertBatch) -> None:
        """Return once ``batch`` is acknowledged by the receiver, or spooled to be sent later (or kept as rejected).

        Sends what the spool holds first, so the receiver gets batches in order. Raises :class:`SinkError` when the
        batch could be neither sent nor spooled (the spool is full or not writable)."""
        with self._lock:
            if self._closed:
                raise SinkError(f"{self.name} is closed")
            if not batch.alerts:
                return
            if not BATCH_KEY.fullmatch(batch.key):
                raise SinkError(f"{self.name}: batch key {batch.key[:80]!r} is not a valid idempotency key")
            if batch.key in self._acknowledged or batch.key in self._spool:
                self._send_spooled(eager=False)
                return
            try:
                body = encode_batch(batch)
            except orjson.JSONEncodeError as exc:
                raise SinkError(f"{self.name}: batch {batch.key} cannot be written as JSON: {exc}") from exc
            if not self._spool and self._may_send(eager=False):
                answer = self._send_with_retries(batch.key, body)
                if answer.outcome == "acknowledged":
                    return
                if answer.outcome == "rejected":
                    self._keep_rejected(batch.key, body, answer.reason, None)
                    return
            self._spool.put(batch.key, body)
            self.stats.spooled += 1
            self._send_spooled(eager=False)

    def flush(self, timeout: float | None = None) -> int:
        """Send the spooled batches, oldest first, retrying with backoff for at most ``timeout`` seconds; the
        number still pending. Without a timeout: one pass now, stopping at the first batch that fails. With a
        timeout of 0: one pass only if this sink's backoff has run out (what a loop calls between its steps, so
        that a receiver refusing everything is asked again at the backoff's pace, not the loop's)."""
        with self._lock:
            if self._closed:
                return len(self._spool)
            deadline = time.monotonic() + (timeout or 0.0)
            # An explicit flush tries now even during this sink's own backoff; a receiver's Retry-After still holds.
            self._send_spooled(eager=timeout != 0)
            while self._spool:
                wake = max(self._backoff_until, self._receiver_wait_until)
                if wake > deadline:
                    break
                time.sleep(max(0.0, wake - time.monotonic()))
                self._send_spooled(eager=False)
            return len(self._spool)

    def close(self) -> None:
        """Close the connection and release the spool folder; spooled batches wait there for the next run."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_connection()
            self._spool.close()
            if self._spool:
                logger.warning(
                    "%s: %d batch(es) not yet delivered stay spooled in %s and are sent on the next run",
                    self.name,
                    len(self._spool),
                    self._spool.pending_dir,
                )

    # -- sending ----------------------------------------------------------------------------------------------

    def _may_send(self, *, eager: bool) -> bool:
        now = time.monotonic()
        return now >= self._receiver_wait_until and (eager or now >= self._backoff_until)

    def _send_with_retries(self, key: str, body: bytes) -> _Answer:
        """Send one batch up to ``max_attempts`` times, pausing between attempts; the last answer."""
        attempt = 1
        while True:
            answer = self._send(key, body)
            if answer.outcome != "retry":
                return answer
            if attempt >= self._max_attempts:
                return answer
            pause = max(self._backoff_until, self._receiver_wait_until) - time.monotonic()
            if pause > self._max_backoff:  # the receiver asked for a longer pause than deliver() should block
                return answer
            time.sleep(max(0.0, pause))
            attempt += 1

    def _send_spooled(self, *, eager: bool) -> None:
        """Send spooled batches oldest first, stopping at the first that fails for the moment."""
        if not self._spool or not self._may_send(eager=eager):
            return
        for entry in self._spool.pending():
            try:
                body = self._spool.read(entry)
            except OSError as exc:
                raise SinkError(f"{self.name}: cannot read spooled batch {entry.path}: {exc.strerror}") from exc
            answer = self._send(entry.key, body)
            if answer.outcome == "acknowledged":
                self._spool.remove(entry)
            elif answer.outcome == "rejected":
                self._keep_rejected(entry.key, body, answer.reason, entry)
            else:
                return

    def _keep_rejected(self, key: str, body: bytes, reason: str, entry: SpooledBatch | None) -> None:
        where = self._spool.reject(entry, reason) if entry is not None else self._spool.put_rejected(key, body, reason)
        self.stats.rejected += 1
        logger.error("%s refused batch %s for good (%s); it is kept in %s", self.name, key, reason, where)

    def _send(self, key: str, body: bytes) -> _Answer:
        """One batch's request (following same-origin 307/308), with its outcome recorded in the backoff state."""
        answer = self._request(key, body)
        if answer.outcome in ("retry", "held"):
            self._note_failure(answer)
        else:
            self._note_answer()
            if answer.outcome == "acknowledged":
                self.stats.acknowledged += 1
                self._acknowledged[key] = None
                if len(self._acknowledged) > _ACKNOWLEDGED_MEMORY:
                    self._acknowledged.popitem(last=False)
        return answer

    def _request(self, key: str, body: bytes) -> _Answer:
        target = self._target
        path = target.path
        current_url = f"{target.scheme}://{target.host}:{target.port}{path}"
        for _ in range(MAX_REDIRECTS + 1):
            try:
                status, reason, location, retry_after = self._exchange(path, key, body)
            except (OSError, http.client.HTTPException) as exc:
                return _Answer("retry", _describe_error(exc))
            if 200 <= status < 300:
                return _Answer("acknowledged")
            if status in (307, 308) and location:
                next_url = urljoin(current_url, location)
                try:
                    next_target = parse_target(next_url)
                except ValueError:
                    next_target = None
                if next_target is None or next_target.origin() != target.origin():
                    return _Answer("rejected", f"redirected ({status}) to {redact_url(next_url)}; not followed")
                path, current_url = next_target.path, next_url
                continue
            if 300 <= status < 400:
                return _Answer("rejected", f"answered {status} {reason} (a redirect this sink does not follow)")
            if status in HELD_STATUSES:
                return _Answer(
                    "held",
                    f"answered {status} {reason} ({_HELD_ADVICE[status]})",
                    parse_retry_after(retry_after),
                )
            if 400 <= status < 500 and status not in RETRYABLE_STATUSES:
                return _Answer("rejected", f"answered {status} {reason}")
            return _Answer("retry", f"answered {status} {reason}", parse_retry_after(retry_after))
        return _Answer("rejected", f"more than {MAX_REDIRECTS} redirects")

    def _exchange(self, path: str, key: str, body: bytes) -> tuple[int, str, str | None, str | None]:
        """POST once: (status, reason, Location, Retry-After). A kept-alive connection that the receiver closed
        while idle fails on first use, so such a failure is tried once more on a fresh connection before it
        counts (the idempotency key makes the resend safe)."""
        reused = self._connection is not None
        try:
            return self._post(path, key, body)
        except _STALE_CONNECTION_ERRORS:
            if not reused:
                raise
        return self._post(path, key, body)

    def _post(self, path: str, key: str, body: bytes) -> tuple[int, str, str | None, str | None]:
        connection = self._connect()
        self.stats.requests += 1
        try:
            connection.request("POST", path, body=body, headers={**self._headers, "Idempotency-Key": key})
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
        except BaseException:
            self._drop_connection()
            raise
        if not response.isclosed() or response.will_close:  # an answer too long to drain, or no keep-alive
            response.close()
            self._drop_connection()
        return response.status, response.reason, response.getheader("Location"), response.getheader("Retry-After")

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            target = self._target
            connection: http.client.HTTPConnection
            if target.scheme == "https":
                connection = http.client.HTTPSConnection(
                    target.host, target.port, timeout=self._timeout, context=self._ssl_context
                )
            else:
                connection = http.client.HTTPConnection(target.host, target.port, timeout=self._timeout)
            try:
                connection.connect()
                # http.client writes the headers and the body separately: with Nagle's algorithm on, the body
                # would wait for the receiver's (delayed) acknowledgement of the headers, ~40 ms a request.
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- backoff ----------------------------------------------------------------------------------------------

    def _note_failure(self, answer: _Answer) -> None:
        self._failures += 1
        self.stats.failures += 1
        # Exponential backoff with "equal jitter": half the step fixed, half random, so that many shellwatch
        # instances behind one receiver do not retry in lockstep, and no retry comes immediately.
        step = min(self._max_backoff, self._backoff * 2 ** min(self._failures - 1, 30))
        now = time.monotonic()
        self._backoff_until = now + step / 2 + random.uniform(0.0, step / 2)
        if answer.retry_after is not None:
            self._receiver_wait_until = now + answer.retry_after
            self._backoff_until = max(self._backoff_until, self._receiver_wait_until)
        if answer.outcome == "held" and (self._failures == 1 or answer.reason != self._held_reason):
            logger.error(
                "%s refuses alerts: %s; batches wait in %s, in order, and are sent again with backoff",
                self.name,
                answer.reason,
                self._spool.pending_dir,
            )
        elif self._failures == 1:
            logger.warning(
                "%s cannot take alerts now (%s); retrying with backoff, batches not taken are spooled in %s",
                self.name,
                answer.reason,
                self._spool.pending_dir,
            )
        else:
            logger.debug("%s: attempt failed (%s)", self.name, answer.reason)
        self._held_reason = answer.reason if answer.outcome == "held" else ""

    def _note_answer(self) -> None:
        if self._failures:
            logger.info("%s takes alerts again after %d failed attempt(s)", self.name, self._failures)
        self._failures = 0
        self._held_reason = ""
        self._backoff_until = 0.0
        self._receiver_wait_until = 0.0


def _describe_error(exc: BaseException) -> str:
    """A transport error for a message: its kind and text (which name the host at most, never the URL's secrets)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
