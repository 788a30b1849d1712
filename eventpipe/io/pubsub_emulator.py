"""The Google Pub/Sub emulator on 127.0.0.1, for tests, benchmarks and local trials.

```
with PubSubEmulator() as emulator:      # sets PUBSUB_EMULATOR_HOST while running
    topic, subscription = emulator.create("events")
```
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PROJECT = "eventpipe-local"
START_ATTEMPTS = 5


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PubSubEmulator:
    """Starts the emulator on a free port; stops it (and restores the environment) on exit."""

    def __init__(self, binary: Path = EMULATOR, project: str = PROJECT) -> None:
        self.binary = binary
        self.project = project
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._previous_host: str | None = None

    def __enter__(self) -> PubSubEmulator:
        self._data = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
        self._log = open(Path(self._data.name) / "emulator.log", "wb")
        # The emulator cannot report a port it chose (`--port=0` logs "listening on 0"), so
        # a free port is picked first; another process may take it before the emulator
        # binds it: the emulator then logs a BindException, and it is started again.
        for attempt in range(START_ATTEMPTS):
            if attempt:
                self.port = free_port()
                self.host = f"127.0.0.1:{self.port}"
            self._start()
            if self._wait_ready(timeout=60):
                break
            self._stop()
        else:
            raise RuntimeError(f"the Pub/Sub emulator found no free port (see {self._log.name})")
        self._previous_host = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = self.host
        return self

    def _start(self) -> None:
        self._log_start = self._log.tell()
        self.process = subprocess.Popen(
            [str(self.binary), "--host=127.0.0.1", f"--port={self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._data.name,
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float) -> bool:
        """True once this emulator listens on its port (its log says so: a connection could
        reach another process); False if the port was taken."""
        started = f"Server started, listening on {self.port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the Pub/Sub emulator exited (see {self._log.name})")
            self._log.flush()
            with open(self._log.name, "rb") as log:
                log.seek(self._log_start)
                text = log.read().decode(errors="replace")
            if "BindException" in text:
                return False
            if started in text:
                with socket.create_connection(("127.0.0.1", self.port), 5):
                    return True
            time.sleep(0.1)
        raise TimeoutError(f"the Pub/Sub emulator did not listen on {self.host} in {timeout}s")

    def __exit__(self, *exc: object) -> None:
        if self._previous_host is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = self._previous_host
        self._stop()
        self._log.close()
        self._data.cleanup()

    def _stop(self) -> None:
        if self.process is not None:
            # The launcher script starts Java: stop the whole process group it leads.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None

    def create(self, name: str) -> tuple[str, str]:
        """Create topic `name` and subscription `name`; returns their paths."""
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(self.project, name)
        subscription = subscriber.subscription_path(self.project, name)
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic)
        subscriber.close()
        return topic, subscription
