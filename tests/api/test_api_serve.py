"""`eventpipe serve`: options, key sources, refusal without keys, a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_support import CANONICAL_EVENTS, free_port, write_lake

from eventpipe.jobs.cli import build_parser, main


def test_defaults() -> None:
    args = build_parser().parse_args(["serve", "--lake", "L"])
    assert (args.lake, args.host, args.port, args.api_key, args.insecure_no_auth) == (
        "L",
        "127.0.0.1",
        8080,
        [],
        False,
    )
    args = build_parser().parse_args(["serve", "--lake", "L", "--api-key", "a", "--api-key", "b"])
    assert args.api_key == ["a", "b"]


def test_refuses_to_start_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTPIPE_API_KEYS", raising=False)
    assert main(["serve", "--lake", str(tmp_path)]) == 2
    monkeypatch.setenv("EVENTPIPE_API_KEYS", " , ")
    assert main(["serve", "--lake", str(tmp_path)]) == 2


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.mark.slow
def test_serves_in_its_own_process_with_keys_from_flag_and_env(tmp_path: Path) -> None:
    lake = write_lake(tmp_path / "lake", CANONICAL_EVENTS)
    port = free_port()
    env = {**os.environ, "EVENTPIPE_API_KEYS": "env-1,env-2"}
    command = [
        sys.executable,
        "-m",
        "eventpipe.jobs.cli",
        "serve",
        "--lake",
        str(lake),
        "--port",
        str(port),
        "--api-key",
        "flag-key",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        for key, status in [("flag-key", 200), ("env-2", 200), ("nope", 401)]:
            response = httpx.get(
                f"{url}/v1/events", params={"limit": 2}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == status
        response = httpx.get(
            f"{url}/v1/events", params={"limit": 2}, headers={"Authorization": "Bearer env-1"}
        )
        assert [e["messageId"] for e in response.json()["events"]] == ["e10", "e09"]
    finally:
        process.terminate()
        process.wait(timeout=10)
