"""A webhook receiver for tests: a real HTTP server on 127.0.0.1, run in a thread, that stores alert batches once
per ``Idempotency-Key`` (as a receiver should) and can be told to misbehave.

It can be stopped and started again on the same port (a receiver going down and coming back); stopping also cuts
the connections it holds open, as a dying process would. Each request takes the next scripted behaviour, if any,
else the default one:

- ``Accept()``: store the batch (unless its key was stored before) and answer 200;
- ``DropAfterBody()``: store the batch, then close the connection without answering (the client cannot know);
- ``Stall(seconds)``: store the batch, then wait before answering (longer than the client's timeout);
- ``Answer(status, headers)``: store nothing, answer ``status`` (429 with Retry-After, 503, 400, a redirect...).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class DropAfterBody:
    pass


@dataclass(frozen=True)
class Stall:
    seconds: float


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


Behaviour = Accept | DropAfterBody | Stall | Answer


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    key: str | None
    alert_ids: tuple[str, ...]
    behaviour: Behaviour
    at: float


class WebhookReceiver:
    """See the module docstring. ``url`` is valid once started; the port stays the same across restarts."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.port = 0
        self.tls = tls
        self.lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []
        self.stored_keys: list[str] = []
        """Idempotency keys stored, in the order they were first received."""
        self.alert_counts: Counter[str] = Counter()
        """Times each alert id was stored (1 for every alert when de-duplication works)."""
        self.script: deque[Behaviour] = deque()
        self.default: Behaviour = Accept()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open_connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hook"

    @property
    def running(self) -> bool:
        """Whether the receiver is up (listening)."""
        return self._server is not None

    @property
    def key_counts(self) -> Counter[str]:
        """Times each Idempotency-Key arrived, retries included."""
        with self.lock:
            return Counter(request.key for request in self.requests if request.key is not None)

    def next_behaviour(self) -> Behaviour:
        with self.lock:
            return self.script.popleft() if self.script else self.default

    def store(self, key: str | None, alert_ids: tuple[str, ...]) -> None:
        with self.lock:
            if key is None or key in self.stored_keys:
                return
            self.stored_keys.append(key)
            self.alert_counts.update(alert_ids)

    def record(self, request: ReceivedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def start(self) -> WebhookReceiver:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.receiver = self
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: stop listening and cut every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self.lock:
            connections = list(self._open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self.lock:
            if is_open:
                self._open_connections.add(connection)
            else:
                self._open_connections.discard(connection)


class _Server(ThreadingHTTPServer):
    receiver: WebhookReceiver
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that fail the TLS handshake or vanish mid-request are part of these tests, not errors."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection reuse is exercised
    disable_nagle_algorithm = True  # headers and body go out in two writes: without it, each answer waits ~40 ms
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver.track(self.connection, True)

    def finish(self) -> None:
        self.server.receiver.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the test's own output."""

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(length, MAX_BODY))
        key = self.headers.get("Idempotency-Key")
        try:
            document = orjson.loads(body)
            alert_ids = tuple(str(alert["kibana.alert.uuid"]) for alert in document["alerts"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            alert_ids = ()
        behaviour = receiver.next_behaviour()
        receiver.record(
            ReceivedRequest(self.path, dict(self.headers.items()), key, alert_ids, behaviour, time.monotonic())
        )
        if isinstance(behaviour, Answer):
            self._answer(behaviour.status, behaviour.headers)
            return
        receiver.store(key, alert_ids)
        if isinstance(behaviour, DropAfterBody):
            self.close_connection = True
            return
        if isinstance(behaviour, Stall):
            time.sleep(behaviour.seconds)
        self._answer(200, {})

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        payload = b'{"ok":true}' if status < 300 else b'{"ok":false}'
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
