"""`eventpipe identity` end to end: anonymous events are re-stitched once the visitor identifies."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import orjson

from eventpipe.identity.rules import kpid_for
from eventpipe.jobs.cli import main

from pipeline_support import make_event


def write_jsonl(path: Path, events: list[dict]) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def at(day: int, hour: int) -> str:
    return f"2026-10-{day:02d}T{hour:02d}:00:00.000Z"


def event(message: str, day: int, hour: int, **fields) -> dict:
    stamp = at(day, hour)
    base = {"messageId": message, "timestamp": stamp, "sentAt": stamp, "receivedAt": stamp}
    return make_event(**base, **fields)


def kpids(lake: Path) -> dict[str, str | None]:
    rows = duckdb.connect().execute(
        f"SELECT messageId, kpid FROM read_parquet('{lake}/events/*/*.parquet')"
    )
    return dict(rows.fetchall())


def cli(*args: str) -> None:
    assert main(list(args)) == 0


def test_anonymous_history_gets_the_kpid_once_the_visitor_identifies(tmp_path):
    lake = tmp_path / "lake"
    anon = {"anonymousId": "visitor-a", "userId": ...}
    first = [
        event("a1", 1, 9, **anon),
        event("a2", 2, 9, **anon),
        event("p1", 2, 10, anonymousId="laptop", userId="parent"),
        event("x1", 3, 9, anonymousId="anonymous", userId=...),  # a placeholder: no profile
    ]
    cli("import", write_jsonl(tmp_path / "first.jsonl", first), "--lake", str(lake),
        "--connection-id", "1")  # fmt: skip
    cli("identity", "--lake", str(lake))
    parent = kpid_for("parent")
    assert kpids(lake) == {"a1": None, "a2": None, "p1": parent, "x1": None}

    second = [
        # The visitor signs up: the identify links visitor-a to user-42.
        event(
            "i1",
            5,
            9,
            type="identify",
            event=...,
            properties=...,
            anonymousId="visitor-a",
            userId="user-42",
            traits={"plan": "pro"},
        ),
        # The parent's child logs in on the family laptop: a conflict, not a merge.
        event("c1", 5, 10, anonymousId="laptop", userId="child"),
        # The user's later events on the known profile get the kpid at import already.
        event("p2", 5, 11, anonymousId="laptop", userId="parent"),
    ]
    cli("import", write_jsonl(tmp_path / "second.jsonl", second), "--lake", str(lake),
        "--connection-id", "1")  # fmt: skip
    assert kpids(lake)["p2"] == parent  # stitched by the import, from the stored map
    assert kpids(lake)["i1"] is None  # a new identity: resolved by the next identity run

    cli("identity", "--lake", str(lake))
    user = kpid_for("user-42")
    assert kpids(lake) == {
        "a1": user, "a2": user, "i1": user,  # the anonymous history is re-stitched
        "p1": parent, "p2": parent,
        "c1": kpid_for("child"),  # the child keeps a profile of its own
        "x1": None,
    }  # fmt: skip
    conflicts = duckdb.connect().execute(
        f"SELECT anonymousId, userId FROM read_parquet('{lake}/identity/conflicts.parquet')"
    )
    assert conflicts.fetchall() == [("laptop", "child")]

    # A second run changes nothing and rewrites no partition.
    before = sorted(p.name for p in (lake / "events").glob("*/*.parquet"))
    cli("identity", "--lake", str(lake))
    assert sorted(p.name for p in (lake / "events").glob("*/*.parquet")) == before
    runs = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    last = max((r for r in runs if r["job"] == "identity"), key=lambda r: r["run_id"])
    assert (last["kpids_changed"], last["partitions_rewritten"]) == (0, 0)

    # Reprocessing keeps the kpids (it stitches from the same map).
    stitched = kpids(lake)
    cli("reprocess", "--lake", str(lake), "--from", "2026-10-01", "--to", "2026-10-31")
    assert kpids(lake) == stitched


def test_identity_of_an_empty_lake_is_a_clear_error(tmp_path, caplog):
    assert main(["identity", "--lake", str(tmp_path / "nothing")]) == 2
    assert "import events first" in caplog.text
