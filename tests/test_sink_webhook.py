"""The webhook sink and its disk spool, against a real HTTP receiver on 127.0.0.1 (tests/webhook_receiver.py).

What a webhook must do is set by HTTP itself: 2xx acknowledges; 429 and 503 may carry ``Retry-After`` as seconds or
an HTTP-date (RFC 9110 §10.2.3, https://www.rfc-editor.org/rfc/rfc9110#field.retry-after); 408, 429 and 5xx are
"try again", other 4xx "the request is wrong"; 307/308 redirect keeping method and body (RFC 9110 §15.4.8-9).
The ``Idempotency-Key`` header follows the IETF httpapi draft "The Idempotency-Key HTTP Header Field"
(https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/): a receiver that keeps the keys it
has seen can tell a retried request from a new one.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from shellwatch.sinks.base import AlertBatch, SinkError, make_batch
from shellwatch.sinks.spool import Spool
from shellwatch.sinks.webhook import (
    MAX_RETRY_AFTER,
    WebhookSink,
    encode_batch,
    parse_retry_after,
    parse_target,
    redact_url,
)
from webhook_receiver import Accept, Answer, DropAfterBody, Stall, WebhookReceiver


def fast_sink(url: str, spool_dir: Path, **options: Any) -> WebhookSink:
    """A sink with small pauses, so that outages cost milliseconds, not seconds."""
    settings: dict[str, Any] = {"timeout": 2.0, "max_attempts": 3, "backoff": 0.005, "max_backoff": 0.03, **options}
    return WebhookSink(url, spool_dir=spool_dir, **settings)


def alert(number: int) -> dict[str, Any]:
    return {
        "kibana.alert.uuid": f"alert-{number:05d}",
        "kibana.alert.rule.name": "Web Server Spawned a Shell",
        "process": {"name": "cmd.exe", "parent": {"name": "w3wp.exe"}, "command_line": f"cmd /c whoami #{number}"},
        "@timestamp": datetime(2024, 5, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=number),
    }


def batches(count: int, size: int = 3, first: int = 0) -> list[AlertBatch]:
    return [make_batch([alert(first + n * size + i) for i in range(size)]) for n in range(count)]


def all_ids(delivered: list[AlertBatch]) -> set[str]:
    return {str(item["kibana.alert.uuid"]) for batch in delivered for item in batch.alerts}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


def test_a_batch_is_posted_as_json_with_its_idempotency_key(receiver: WebhookReceiver, tmp_path: Path) -> None:
    batch = batches(1)[0]
    with fast_sink(receiver.url, tmp_path) as sink:
        sink.deliver(batch)
        assert sink.flush() == 0
    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.key == batch.key
    assert request.headers["Content-Type"] == "application/json"
    assert request.alert_ids == tuple(item["kibana.alert.uuid"] for item in batch.alerts)
    assert orjson.loads(encode_batch(batch))["batch_key"] == batch.key
    assert list(tmp_path.joinpath("pending").iterdir()) == []


def test_a_batch_already_acknowledged_is_not_sent_again(receiver: WebhookReceiver, tmp_path: Path) -> None:
    batch = batches(1)[0]
    with fast_sink(receiver.url, tmp_path) as sink:
        sink.deliver(batch)
        sink.deliver(batch)
    assert len(receiver.requests) == 1


def test_receiver_down_and_back_every_alert_stored_exactly_once(receiver: WebhookReceiver, tmp_path: Path) -> None:
    """The receiver goes down for stretches, drops connections after taking the body, stalls past the client's
    timeout and answers 503: at the end every alert is stored once, and the receiver did see retried batches."""
    sent: list[AlertBatch] = []
    plan = iter(batches(40, size=5))

    def deliver(sink: WebhookSink, count: int) -> None:
        for _ in range(count):
            batch = next(plan)
            sink.deliver(batch)
            sent.append(batch)

    with fast_sink(receiver.url, tmp_path, timeout=0.3) as sink:
        deliver(sink, 6)  # up
        receiver.stop()
        deliver(sink, 8)  # down: spooled
        assert len(sink.spool) == 8
        receiver.start()
        # Back, but flaky: takes bodies and hangs up, stalls beyond the timeout, fails with 503.
        receiver.script.extend([DropAfterBody(), Accept(), DropAfterBody(), Stall(0.6), Answer(503), DropAfterBody()])
        deliver(sink, 8)
        receiver.stop()
        deliver(sink, 8)  # down again, with the earlier backlog perhaps not all sent
        receiver.start()
        receiver.script.extend([Answer(503, {"Retry-After": "0"}), DropAfterBody()])
        assert sink.flush(timeout=5.0) == 0
        deliver(sink, 5)
        receiver.stop()
        deliver(sink, 5)
        receiver.start()
        assert sink.flush(timeout=5.0) == 0
        stats = sink.stats

    assert len(sent) == 40
    assert set(receiver.alert_counts) == all_ids(sent)
    assert set(receiver.alert_counts.values()) == {1}
    assert receiver.stored_keys == [batch.key for batch in sent]  # oldest first, across outages
    # Every scripted failure (4 drops, a stall, two 503s) came after the receiver had the body: each was re-sent.
    resent = sum(times - 1 for times in receiver.key_counts.values())
    assert resent >= 7
    assert stats.failures >= 5 and stats.spooled >= 21
    assert list(tmp_path.joinpath("pending").iterdir()) == []


def test_a_new_sink_on_the_same_spool_delivers_what_an_earlier_one_left(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    receiver.port = free_port()
    url = receiver.url
    left = batches(6)
    with fast_sink(url, tmp_path) as first:
        for batch in left:
            first.deliver(batch)
        assert len(first.spool) == 6
    pending = sorted(tmp_path.joinpath("pending").iterdir())
    assert [path.name.split("-", 1)[1] for path in pending] == [f"{batch.key}.json" for batch in left]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in pending)
    assert stat.S_IMODE(tmp_path.joinpath("pending").stat().st_mode) == 0o700

    receiver.start()
    try:
        with fast_sink(url, tmp_path) as second:
            assert len(second.spool) == 6
            assert second.flush() == 0
    finally:
        receiver.stop()
    assert receiver.stored_keys == [batch.key for batch in left]
    assert set(receiver.alert_counts.values()) == {1}


def test_a_killed_process_leaves_its_spool_for_the_next_run(tmp_path: Path) -> None:
    """kill -9 right after deliver() returned with the receiver down: the batches are on disk, whole."""
    port = free_port()
    child = textwrap.dedent(
        f"""
        import os, signal
        from shellwatch.sinks.base import make_batch
        from shellwatch.sinks.webhook import WebhookSink
        sink = WebhookSink("http://127.0.0.1:{port}/hook", spool_dir={str(tmp_path)!r}, max_attempts=1)
        for n in range(10):
            sink.deliver(make_batch([{{"kibana.alert.uuid": f"alert-{{n}}"}}]))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    finished = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=30, check=False)
    assert finished.returncode == -signal.SIGKILL, finished.stderr.decode()

    receiver = WebhookReceiver()
    receiver.port = port
    receiver.start()
    try:
        with fast_sink(receiver.url, tmp_path) as sink:
            assert sink.flush(timeout=2.0) == 0
    finally:
        receiver.stop()
    assert list(receiver.alert_counts) == [f"alert-{n}" for n in range(10)]


def test_a_4xx_is_not_retried_and_the_batch_is_kept_in_rejected(
    receiver: WebhookReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refused, accepted = batches(2)
    receiver.script.append(Answer(422))
    with fast_sink(receiver.url, tmp_path) as sink:
        with caplog.at_level(logging.ERROR, logger="shellwatch.sinks.webhook"):
            sink.deliver(refused)
        sink.deliver(accepted)
        sink.deliver(refused)  # held in rejected/: not sent again
        assert sink.stats.rejected == 1
    assert [request.key for request in receiver.requests] == [refused.key, accepted.key]
    kept = tmp_path / "rejected" / f"{refused.key}.json"
    assert orjson.loads(kept.read_bytes())["batch_key"] == refused.key
    assert "422" in kept.with_suffix(".reason").read_text()
    assert refused.key in caplog.text and str(kept) in caplog.text
    assert receiver.stored_keys == [accepted.key]


def test_a_spooled_batch_refused_later_goes_to_rejected_and_the_rest_still_go(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    receiver.port = free_port()
    sent = batches(4)
    with fast_sink(receiver.url, tmp_path) as sink:
        for batch in sent:
            sink.deliver(batch)
        receiver.start()
        try:
            receiver.script.extend([Accept(), Answer(400)])
            assert sink.flush() == 0
        finally:
            receiver.stop()
    assert receiver.stored_keys == [sent[0].key, sent[2].key, sent[3].key]
    assert [path.name for path in tmp_path.joinpath("rejected").glob("*.json")] == [f"{sent[1].key}.json"]


def test_429_with_retry_after_is_retried_no_sooner_than_asked(receiver: WebhookReceiver, tmp_path: Path) -> None:
    batch = batches(1)[0]
    receiver.script.append(Answer(429, {"Retry-After": "1"}))
    with fast_sink(receiver.url, tmp_path, max_backoff=2.0) as sink:
        sink.deliver(batch)
        assert len(sink.spool) == 0
    first, second = receiver.requests
    assert second.at - first.at >= 0.95
    assert receiver.stored_keys == [batch.key]


def test_5xx_is_retried_within_deliver(receiver: WebhookReceiver, tmp_path: Path) -> None:
    batch = batches(1)[0]
    receiver.script.extend([Answer(503), Answer(500)])
    with fast_sink(receiver.url, tmp_path) as sink:
        sink.deliver(batch)
        assert (len(sink.spool), sink.stats.failures, sink.stats.acknowledged) == (0, 2, 1)
    assert [request.key for request in receiver.requests] == [batch.key] * 3


def test_a_long_retry_after_spools_instead_of_blocking_and_flush_respects_it(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    batch = batches(1)[0]
    receiver.script.append(Answer(503, {"Retry-After": "120"}))
    with fast_sink(receiver.url, tmp_path) as sink:
        started = time.monotonic()
        sink.deliver(batch)
        assert time.monotonic() - started < 1.0
        assert sink.flush(timeout=0.2) == 1
        sink.deliver(batches(1, first=100)[0])  # joins the spool behind it, sends nothing yet
        assert len(sink.spool) == 2
    assert len(receiver.requests) == 1


def test_the_spool_limit_raises_sink_error_and_keeps_what_it_held(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    receiver.port = free_port()
    sent = batches(40)
    limit = 5 * len(encode_batch(sent[0])) + 100
    kept: list[AlertBatch] = []
    with fast_sink(receiver.url, tmp_path, spool_limit=limit) as sink:
        with pytest.raises(SinkError, match="is full") as refused:
            for batch in sent:
                sink.deliver(batch)
                kept.append(batch)
        assert len(kept) == 5 and len(sink.spool) == 5
        assert f"{limit:,}" in str(refused.value)
        receiver.start()
        try:
            assert sink.flush() == 0
            sink.deliver(sent[5])  # room again
        finally:
            receiver.stop()
    assert receiver.stored_keys == [batch.key for batch in sent[:6]]


def test_names_and_messages_never_show_url_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    receiver = WebhookReceiver()
    receiver.port = free_port()
    secret_url = f"http://alice:s3cr%40t@127.0.0.1:{receiver.port}/hook?token=t0ken&team=blue#frag"
    with fast_sink(secret_url, tmp_path, spool_limit=3000) as sink:
        assert sink.name == f"webhook:http://127.0.0.1:{receiver.port}/hook?token=***&team=***"
        with caplog.at_level(logging.DEBUG, logger="shellwatch.sinks"), pytest.raises(SinkError) as full:
            for batch in batches(40):
                sink.deliver(batch)
        receiver.start()
        try:
            sink.flush()
        finally:
            receiver.stop()
    messages = caplog.text + str(full.value)
    assert "webhook:http://127.0.0.1" in caplog.text
    for secret in ("alice", "s3cr", "t0ken", "blue", "frag"):
        assert secret not in messages
    request = receiver.requests[0]
    assert request.path == "/hook?token=t0ken&team=blue"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cr@t").decode()
    with pytest.raises(ValueError) as wrong_scheme:
        parse_target("ftp://bob:hunter2@files.example/x?key=k3y")
    assert "hunter2" not in str(wrong_scheme.value) and "k3y" not in str(wrong_scheme.value)
    assert redact_url("https://u:p@[::1]:8443/a?b=c") == "https://[::1]:8443/a?b=***"


def test_redirects_are_followed_only_to_the_same_origin(receiver: WebhookReceiver, tmp_path: Path) -> None:
    moved, elsewhere = batches(2)
    receiver.script.append(Answer(308, {"Location": "/hook/v2"}))
    with fast_sink(receiver.url, tmp_path) as sink:
        sink.deliver(moved)
        receiver.script.append(Answer(307, {"Location": "http://collector.example.invalid/hook"}))
        sink.deliver(elsewhere)
    assert [request.path for request in receiver.requests] == ["/hook", "/hook/v2", "/hook"]
    assert receiver.stored_keys == [moved.key]
    reason = (tmp_path / "rejected" / f"{elsewhere.key}.reason").read_text()
    assert "collector.example.invalid" in reason and "not followed" in reason


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
                *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a test certificate with openssl: {exc}")
    return cert, key


def test_tls_certificates_are_verified_by_default(tmp_path: Path) -> None:
    cert, key = _self_signed_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    receiver = WebhookReceiver(tls=server_tls).start()
    batch = batches(1)[0]
    try:
        with fast_sink(receiver.url, tmp_path / "default") as default:
            default.deliver(batch)
            assert len(default.spool) == 1  # an untrusted certificate: not sent, kept
        assert receiver.requests == []
        trusting = ssl.create_default_context(cafile=str(cert))
        with fast_sink(receiver.url, tmp_path / "trusting", ssl_context=trusting) as sink:
            sink.deliver(batch)
            assert len(sink.spool) == 0
    finally:
        receiver.stop()
    assert receiver.stored_keys == [batch.key]


def test_only_http_and_https_urls_are_accepted(tmp_path: Path) -> None:
    for url in ("file:///etc/passwd", "ftp://host/x", "http:///nohost", "https://host:99999/"):
        with pytest.raises(ValueError):
            WebhookSink(url, spool_dir=tmp_path)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """RFC 9110 §10.2.3: ``Retry-After = HTTP-date / delay-seconds``."""
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("9999999", now) == MAX_RETRY_AFTER
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


# -- the spool on its own ------------------------------------------------------------------------------------------


def test_spool_keeps_order_across_reopen_and_ignores_a_repeated_put(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for key in ("c" * 64, "a" * 64, "b" * 64):
        spool.put(key, key.encode())
    spool.put("a" * 64, b"different body")  # already held: unchanged
    spool.close()
    reopened = Spool(tmp_path)
    assert [entry.key for entry in reopened.pending()] == ["c" * 64, "a" * 64, "b" * 64]
    assert reopened.read(reopened.pending()[1]) == b"a" * 64
    assert reopened.bytes_used == 3 * 64
    reopened.put("d" * 64, b"x")
    assert [entry.key for entry in reopened.pending()][-1] == "d" * 64
    reopened.close()


def test_spool_drops_half_written_files_and_refuses_a_second_owner(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.put("k1", b"{}")
    half_written = tmp_path / "pending" / ".tmp-000000000002-k2.json"
    half_written.write_bytes(b'{"batch_key": "k2", "alerts": [')
    with pytest.raises(SinkError, match="in use"):
        Spool(tmp_path)
    first.close()
    second = Spool(tmp_path)
    assert [entry.key for entry in second.pending()] == ["k1"]
    assert not half_written.exists()
    with pytest.raises(ValueError):
        second.put("../escape", b"{}")
    second.close()


def test_spool_folder_that_cannot_be_made_is_a_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="not usable"):
        Spool(blocker / "spool")


def test_spool_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path / "spool")
        entry = spool.put("k", b"{}")
        rejected = spool.reject(entry, "400 Bad Request")
        spool.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(rejected.stat().st_mode) == 0o600
    for folder in ("", "pending", "rejected"):
        assert stat.S_IMODE((tmp_path / "spool" / folder).stat().st_mode) == 0o700


@pytest.mark.parametrize("status", [401, 403, 404, 413])
def test_a_refusal_of_every_batch_holds_the_spool_in_order_and_is_retried_with_backoff(
    receiver: WebhookReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """401, 403, 404 and 413 refuse every batch until a configuration changes (a rotated key, a moved endpoint, a
    body limit): rejecting each batch would send every later one to rejected/, where nothing sends it again. They
    wait in the spool instead, in order, and go once the receiver takes them; none is resent within one deliver()."""
    sent = batches(3)
    receiver.default = Answer(status)
    with fast_sink(receiver.url, tmp_path, backoff=1.0, max_backoff=1.0) as sink:
        with caplog.at_level(logging.ERROR, logger="shellwatch.sinks.webhook"):
            sink.deliver(sent[0])
        for batch in sent[1:]:
            sink.deliver(batch)
        assert len(receiver.requests) == 1  # held and spooled, not retried at once like a 503, nor before its backoff
        assert [entry.key for entry in sink.spool.pending()] == [batch.key for batch in sent]
        assert sink.spool.rejected() == [] and sink.stats.rejected == 0
        assert f"answered {status}" in caplog.text and str(sink.spool.pending_dir) in caplog.text
        receiver.default = Accept()  # the key is rotated on the receiver's side, say
        assert sink.flush(timeout=2.0) == 0
    assert receiver.stored_keys == [batch.key for batch in sent]
    assert not list(tmp_path.joinpath("rejected").iterdir())


def test_between_steps_a_zero_timeout_flush_waits_for_the_backoff(receiver: WebhookReceiver, tmp_path: Path) -> None:
    """The watch loop flushes with timeout 0 after every step: a receiver that refuses everything is asked again at
    the pace of the backoff, not at every poll; an explicit flush still tries at once."""
    receiver.default = Answer(401)
    with fast_sink(receiver.url, tmp_path, backoff=60.0, max_backoff=60.0) as sink:
        sink.deliver(batches(1)[0])
        assert len(receiver.requests) == 1
        for _ in range(5):
            assert sink.flush(0) == 1
        assert len(receiver.requests) == 1
        assert sink.flush() == 1
        assert len(receiver.requests) == 2
