"""Helpers of the collector tests (imported as `collector_support`): workspaces with keys,
a collector served in a thread or as its own `eventpipe serve` process, event factories."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from eventpipe.catalog import Catalog


@dataclass(frozen=True)
class Tenant:
    """One workspace of the test lake with its connection and keys (secrets)."""

    workspace: int
    connection: int
    write_key: str
    api_write: str
    api_read: str
    api_admin: str


def make_tenant(catalog: Catalog, name: str) -> Tenant:
    ws = catalog.create_workspace(name)
    conn = catalog.create_connection(ws.id, f"{name} site")
    return Tenant(
        ws.id,
        conn.id,
        catalog.create_write_key(ws.id, conn.id).secret,
        catalog.create_api_key(ws.id, ["write"]).secret,
        catalog.create_api_key(ws.id, ["read"]).secret,
        catalog.create_api_key(ws.id, ["admin"]).secret,
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid track event with a unique messageId."""
    event = {
        "type": "track",
        "event": "Clicked",
        "anonymousId": "anon-1",
        "messageId": str(uuid.uuid4()),
        "timestamp": "2026-12-01T10:00:00Z",
        "properties": {"button": "buy"},
    }
    event.update(overrides)
    return event


@contextlib.contextmanager
def running_app(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a socket it binds itself; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        thread.join(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@contextlib.contextmanager
def serve_process(lake: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`eventpipe serve --lake LAKE --port 0 ARGS` as its own process; yields (URL, process)
    once it has written the port it bound."""
    with (
        tempfile.TemporaryDirectory() as folder,
        open(os.path.join(folder, "log"), "wb") as log,  # a pipe nobody reads would fill up
    ):
        port_file = os.path.join(folder, "port")
        command = [sys.executable, "-m", "eventpipe.jobs.cli", "serve", "--lake", str(lake)]
        process = subprocess.Popen(
            [*command, "--port", "0", "--port-file", port_file, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while not os.path.exists(port_file):
                if process.poll() is not None:
                    raise AssertionError(Path(log.name).read_text(errors="replace"))
                time.sleep(0.05)
            url = f"http://127.0.0.1:{Path(port_file).read_text()}"
            _wait_listening(url, process, log.name)
            yield url, process
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)


def _wait_listening(url: str, process: subprocess.Popen, log: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    while True:
        if process.poll() is not None:
            raise AssertionError(Path(log).read_text(errors="replace"))
        with socket.socket() as sock:
            if sock.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.05)


def landing_closed(lake: Path) -> bool:
    """Whether every landing segment of `lake` is closed (none open or being created)."""
    folder = lake / "landing"
    return not any(p.name.endswith((".open", ".new")) for p in folder.iterdir())


def wait_until(condition: Any, what: str, limit: float = 60.0) -> None:
    """Poll `condition()` until true; fail naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
