"""The local BigQuery emulator (the `bqemulator` package), started once per test session;
its fixtures `bq_endpoint` and `bq_client` are registered for the whole suite by
tests/conftest.py (the read API's semantic tests run against it too).

It runs from its own venv (`.venv/bqemu`, built by `make test`: it pins duckdb 1.5.5
while the project uses 2.0), bound to 127.0.0.1 on free ports, and is stopped at the
end. When it cannot start, the tests that need it fail with the reason (never skip).
`EVENTPIPE_BQ_ENDPOINT=http://127.0.0.1:PORT` uses an emulator already running instead
(`make mutate` starts one for the whole run).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventpipe.io.pubsub_emulator import free_port

ROOT = Path(__file__).resolve().parents[2]


def _default_emulator() -> Path:
    """`.venv/bqemu` beside the running venv (mutmut runs a copy of the tree, mutants/,
    with the project's venv), else the repository's."""
    for venv in (Path(sys.prefix), ROOT / ".venv"):
        if (candidate := venv / "bqemu" / "bin" / "bqemulator").exists():
            return candidate
    return ROOT / ".venv" / "bqemu" / "bin" / "bqemulator"


EMULATOR = Path(os.environ.get("EVENTPIPE_BQEMU") or _default_emulator())
PROJECT = "test-project"
# google-auth must never wait for a GCE metadata server (set before any client exists;
# subprocesses such as Beam workers inherit them).
os.environ.update(
    NO_GCE_CHECK="true",
    GCE_METADATA_HOST="127.0.0.1:9",
    GCE_METADATA_IP="127.0.0.1:9",
    GOOGLE_CLOUD_PROJECT=PROJECT,
)


def _listens_on(process: subprocess.Popen, port: int) -> bool:
    """Whether `process` itself holds the listening socket of `port` (not another server)."""
    import psutil

    try:
        sockets = psutil.Process(process.pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets)


def _wait_ready(process: subprocess.Popen, port: int, log: Path, timeout: float = 60.0) -> bool:
    """True once this emulator answers on `port`; False if it could not bind its ports (taken
    by another process between `free_port()` and its start)."""
    import urllib.request

    url = f"http://127.0.0.1:{port}/bigquery/v2/projects/{PROJECT}/datasets"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "address already in use" in log.read_text():
                return False
            pytest.fail(f"the BigQuery emulator exited at start:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200 and _listens_on(process, port):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"the BigQuery emulator did not answer in {timeout:.0f}s:\n{log.read_text()[-3000:]}"
    )


def _start_emulator(log: Path, attempts: int = 5) -> tuple[subprocess.Popen, int]:
    """The emulator on free ports, started again if another process took one first."""
    env = {**os.environ, "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
    for _ in range(attempts):
        rest, grpc = free_port(), free_port()
        command = [
            str(EMULATOR), "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest),
            "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--project", PROJECT,
            "--ephemeral", "--log-level", "warning",
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            if _wait_ready(process, rest, log):
                return process, rest
        except BaseException:
            _stop(process)
            raise
    pytest.fail(f"the BigQuery emulator found no free port in {attempts} attempts")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def bq_endpoint(tmp_path_factory) -> Iterator[str]:
    """The REST endpoint (http://127.0.0.1:PORT) of a running emulator."""
    if os.environ.get("EVENTPIPE_BQ_ENDPOINT"):
        yield os.environ["EVENTPIPE_BQ_ENDPOINT"]
        return
    if not EMULATOR.exists():
        pytest.fail(
            f"the BigQuery emulator is not installed at {EMULATOR}: run `make test` "
            "(it builds .venv/bqemu from tests/bigquery/emulator-requirements.txt)"
        )
    # DuckDB's spatial extension from its package file, into DuckDB's extension folder (the
    # emulator's `INSTALL spatial` then needs no network); idempotent, as `make test` does it.
    python = EMULATOR.with_name("python")
    installed = subprocess.run(
        [str(python), str(Path(__file__).with_name("install_spatial.py"))],
        capture_output=True,
        text=True,
    )
    if installed.returncode:
        pytest.fail(f"could not install DuckDB's spatial extension:\n{installed.stderr[-3000:]}")
    log = tmp_path_factory.mktemp("bqemu") / "emulator.log"
    process, rest = _start_emulator(log)
    try:
        yield f"http://127.0.0.1:{rest}"
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def bq_client(bq_endpoint):
    from eventpipe.core.bigquery_client import make_client

    return make_client(PROJECT, bq_endpoint)


@contextlib.contextmanager
def bigquery_table(client, endpoint: str, lake: Path) -> Iterator[str]:
    """A table of a fresh dataset holding the events of `lake` (`PROJECT.DATASET.events`);
    the dataset is deleted afterwards."""
    import pyarrow.dataset as ds

    from eventpipe.io.bigquery.tables import (
        BigQueryTarget,
        load_parquet,
        parquet_bytes,
        prepare_tables,
    )
    from eventpipe.schemas.bigquery_schema import load_arrow_schema

    dataset = f"{PROJECT}.api_{uuid.uuid4().hex[:8]}"
    client.create_dataset(dataset)
    try:
        target = BigQueryTarget(table=f"{dataset}.events", endpoint=endpoint)
        prepare_tables(target, client)
        rows = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table()
        rows = rows.drop_columns(["date"]).cast(load_arrow_schema())
        load_parquet(client, target.table, parquet_bytes(rows), f"events_{uuid.uuid4().hex}")
        yield target.table
    finally:
        client.delete_dataset(dataset, delete_contents=True)
