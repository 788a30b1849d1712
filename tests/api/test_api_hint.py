"""`python -m eventpipe.jobs.show --api-hint`: events by workspace, and curl commands
that work against `eventpipe serve` with the demo's read key (or a legacy key)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import httpx
import pytest
from api_support import make_event, serve_process, write_lake

from eventpipe.catalog import Catalog
from eventpipe.jobs.show import DEMO_READ_KEY, api_hint, show


def _curls(hint: str) -> list[tuple[str, str]]:
    """(key, URL) of each curl command of the hint."""
    found = []
    for line in hint.splitlines():
        if line.strip().startswith("curl "):
            words = shlex.split(line)
            key = words[words.index("-H") + 1].removeprefix("Authorization: Bearer ")
            found.append((key, words[-1]))
    return found


@pytest.mark.slow
def test_the_hint_reads_the_demo_workspace_with_its_read_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("EVENTPIPE_API_KEYS", raising=False)
    lake = tmp_path / "lake"
    catalog = Catalog.in_lake(lake)
    demo, other = catalog.create_workspace("Demo"), catalog.create_workspace("Other")
    mine = catalog.create_connection(demo.id, connection_id=1371036433).id
    theirs = catalog.create_connection(other.id).id
    rows = [make_event(messageId=f"demo-{i}", connectionId=mine) for i in range(3)]
    rows += [make_event(messageId="other-0", connectionId=theirs)]
    rows += [make_event(messageId="orphan-0", connectionId=5)]
    write_lake(lake, rows)
    key = catalog.create_api_key(demo.id, ["read"])
    (lake / DEMO_READ_KEY).write_text(json.dumps(key.to_json()))

    summary = show(lake)
    counts = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(
            r"│ (\S[^│]*?)\s+│\s+(\d+) │\s+(\d+) │", summary.split("Workspaces")[1]
        )
    }
    assert counts == {"demo": (1, 3), "other": (1, 1), "(no workspace)": (1, 1)}

    hint = api_hint(lake)
    assert "EVENTPIPE_API_KEYS" not in hint and f"serve --lake {lake}" in hint
    curls = _curls(hint)
    assert len(curls) == 3 and {k for k, _ in curls} == {key.secret}
    with serve_process(lake) as url:
        for secret, target in curls:
            response = httpx.get(
                target.replace("http://127.0.0.1:8080", url),
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert response.status_code == 200, response.text
        first = httpx.get(
            curls[0][1].replace("http://127.0.0.1:8080", url),
            headers={"Authorization": f"Bearer {key.secret}"},
        )
        assert {e["messageId"] for e in first.json()["events"]} == {"demo-0", "demo-1", "demo-2"}


def test_a_lake_without_a_catalog_gets_a_legacy_key(tmp_path: Path) -> None:
    lake = write_lake(tmp_path / "lake", [make_event()])
    hint = api_hint(lake)
    key = (lake / "_api_key").read_text().strip()
    assert f"EVENTPIPE_API_KEYS={key} " in hint
    assert {k for k, _ in _curls(hint)} == {key}
    assert "Workspaces" not in show(lake)


def test_a_catalog_without_the_demo_key_says_how_to_make_one(tmp_path: Path) -> None:
    lake = write_lake(tmp_path / "lake", [make_event()])
    Catalog.in_lake(lake).create_workspace("Acme")
    hint = api_hint(lake)
    assert "$KEY" in hint and "eventpipe keys create" in hint
    assert not (lake / "_api_key").exists()
