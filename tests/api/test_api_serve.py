"""`eventpipe serve`: options, key sources, refusal without keys, a real server process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_support import CANONICAL_EVENTS, make_event, serve_process, write_lake

from eventpipe.catalog import Catalog
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


@pytest.mark.slow
def test_serves_in_its_own_process_with_keys_from_flag_and_env(tmp_path: Path) -> None:
    lake = write_lake(tmp_path / "lake", CANONICAL_EVENTS)
    with serve_process(
        lake, "--api-key", "flag-key", env={"EVENTPIPE_API_KEYS": "env-1,env-2"}
    ) as url:
        for key, status in [("flag-key", 200), ("env-2", 200), ("nope", 401)]:
            response = httpx.get(
                f"{url}/v1/events", params={"limit": 2}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == status
        response = httpx.get(
            f"{url}/v1/events", params={"limit": 2}, headers={"Authorization": "Bearer env-1"}
        )
        assert [e["messageId"] for e in response.json()["events"]] == ["e10", "e09"]


def test_limit_flags_defaults_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve", "--lake", "L"])
    assert (args.memory_limit, args.statement_timeout, args.max_queries) == ("1GB", 10.0, 4)
    for bad in (
        ["--statement-timeout", "0"],
        ["--statement-timeout", "inf"],
        ["--max-queries", "0"],
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", "--lake", "L", *bad])
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "plus at most --memory-limit for DuckDB's queries" in text
    assert "--statement-timeout SECONDS" in text


def test_an_unreadable_memory_limit_stops_the_start(tmp_path: Path) -> None:
    assert main(["serve", "--lake", str(tmp_path), "--api-key", "k", "--memory-limit", "lots"]) == 2


@pytest.mark.slow
def test_serves_the_catalog_keys_without_an_api_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("EVENTPIPE_API_KEYS", raising=False)
    catalog = Catalog.in_lake(tmp_path / "lake")
    acme = catalog.create_workspace("Acme")
    mine = catalog.create_connection(acme.id).id
    other = catalog.create_connection(catalog.create_workspace("Other").id).id
    read = catalog.create_api_key(acme.id, ["read"]).secret
    admin = catalog.create_api_key(acme.id, ["admin"]).secret
    rows = [make_event(messageId="mine", connectionId=mine)]
    lake = write_lake(
        tmp_path / "lake", [*rows, make_event(messageId="theirs", connectionId=other)]
    )
    with serve_process(lake) as url:
        for key, status in [(read, 200), (admin, 403), ("nope", 401)]:
            response = httpx.get(f"{url}/v1/events", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == status
        response = httpx.get(f"{url}/v1/events", headers={"Authorization": f"Bearer {read}"})
        assert [e["messageId"] for e in response.json()["events"]] == ["mine"]


def test_refuses_to_start_with_a_missing_catalog_file(tmp_path: Path) -> None:
    assert main(["serve", "--lake", str(tmp_path), "--catalog", str(tmp_path / "no.sqlite")]) == 2


@pytest.mark.slow
def test_keys_created_after_the_start_work_without_a_restart(tmp_path: Path) -> None:
    lake = write_lake(tmp_path / "lake", CANONICAL_EVENTS)
    with serve_process(lake, "--api-key", "legacy") as url:  # no catalog yet
        catalog = Catalog.in_lake(lake)
        acme = catalog.create_workspace("Acme")
        catalog.create_connection(acme.id, connection_id=CANONICAL_EVENTS[0]["connectionId"])
        key = catalog.create_api_key(acme.id, ["read"]).secret
        response = httpx.get(f"{url}/v1/events", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
        assert len(response.json()["events"]) == len(CANONICAL_EVENTS)
