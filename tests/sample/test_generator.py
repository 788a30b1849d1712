"""The sample generator: deterministic, every input form and failure reason, exact manifest.

The manifest is checked against an independent re-read of the files with a small
validator written from seed 000's rules: every unit it finds invalid must have
exactly one problem, the reason the manifest counted.
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.jobs import cli
from eventpipe.jobs import generate as generate_job
from eventpipe.sample import MANIFEST, REASONS, generate, plan_files
from eventpipe.sample.events import iso_ms
from eventpipe.sample.user_agents import AGENTS, BOT
from eventpipe.schemas.ip_addresses import client_address

N = 2000
SEED = 11

TYPES = {"alias", "identify", "group", "page", "screen", "track"}
EVENT_KEYS = {"anonymousId", "channel", "category", "context", "event", "groupId", "messageId",
              "name", "properties", "sentAt", "originalTimestamp", "timestamp", "traits", "type",
              "previousId", "userId"}  # fmt: skip
SINGLE_EVENT_KEYS = EVENT_KEYS | {"connectionId", "receivedAt"}
CONTEXT_KEYS = {"app", "browser", "campaign", "device", "ip", "library", "locale", "location",
                "network", "os", "page", "referrer", "screen", "session", "sessionId",
                "sessionStart", "timezone", "userAgent"}  # fmt: skip
# field -> types it may have (required ones are checked separately)
ALLOWED = {
    "track": {"event", "properties"},
    "page": {"name", "category", "properties"},
    "screen": {"name", "properties"},
    "identify": {"traits"},
    "group": {"groupId", "traits"},
    "alias": {"previousId"},
}
TYPE_SPECIFIC = {"event", "properties", "name", "category", "traits", "groupId", "previousId"}
ISO = re.compile(r"^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
SPECIAL_IPS = {"255.255.255.255", "255.255.255.0", "255.255.0.0", "0.0.0.0"}


# --- an independent validator ------------------------------------------------------------------


def _datetime_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    m = ISO.match(value)
    if not m or not 1 <= int(m.group(1)) <= 9999:
        return False
    datetime.fromisoformat(value)
    return True


def _ip_ok(value: Any) -> bool:
    return isinstance(value, str) and client_address(value) is not None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def event_problems(ev: Any, batch_context: dict[str, Any], *, single: bool) -> list[str]:
    """Every problem of one event under seed 000's rules (empty when valid)."""
    if not isinstance(ev, dict):
        return ["invalid_event"]
    problems: list[str] = []
    unknown = set(ev) - (SINGLE_EVENT_KEYS if single else EVENT_KEYS)
    assert not unknown, f"generator wrote unknown keys {unknown}"
    etype = ev.get("type")
    if etype is None:
        problems.append("missing_property")
    elif etype not in TYPES:
        problems.append("invalid_value")
    else:
        for key in TYPE_SPECIFIC & set(ev):
            if key not in ALLOWED[etype]:
                problems.append("property_not_permitted")
        required = {"track": ["event"], "group": ["groupId"], "identify": ["userId"],
                    "alias": ["userId", "previousId"]}.get(etype, [])  # fmt: skip
        for key in required:
            if key not in ev or ev[key] is None:
                problems.append("missing_property")
    ids = [ev[k] for k in ("anonymousId", "userId") if ev.get(k) is not None]
    for key in ("anonymousId", "userId"):
        value = ev.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append("invalid_type")
        elif value == "":
            problems.append("invalid_value")
    if not ids:
        problems.append("missing_property")
    for key in ("event", "groupId", "previousId", "name", "category", "messageId", "channel"):
        if ev.get(key) is not None and not isinstance(ev[key], str):
            problems.append("invalid_type")
    for key in ("properties", "traits"):
        if key in ev and not isinstance(ev[key], dict):
            problems.append("invalid_type")
    for key in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        if ev.get(key) is not None and not _datetime_ok(ev[key]):
            problems.append("invalid_value")
    if ev.get("originalTimestamp") is not None and ev.get("timestamp") is None:
        problems.append("missing_property")
    if single:
        assert _is_int(ev["connectionId"]) and _datetime_ok(ev["receivedAt"])
    if "context" in ev and not isinstance(ev["context"], dict):
        return [*problems, "invalid_type"]
    ctx = {**batch_context, **ev.get("context", {})}
    assert not set(ctx) - CONTEXT_KEYS, f"unknown context keys {set(ctx) - CONTEXT_KEYS}"
    problems += _context_problems(ctx)
    return problems


def _context_problems(ctx: dict[str, Any]) -> list[str]:
    problems = []
    screen = ctx.get("screen")
    if screen is not None:
        if not isinstance(screen, dict):
            problems.append("invalid_type")
        else:
            for key in ("width", "height"):
                if key in screen and not (_is_int(screen[key]) and 1 <= screen[key] <= 32767):
                    problems.append("invalid_value")
            d = screen.get("density")
            # rounded half-up to 2 decimals on its decimal text (issue 11.1)
            if (
                d is not None
                and not 0 < Decimal(repr(d)).quantize(Decimal("0.01"), ROUND_HALF_UP) < 10
            ):
                problems.append("invalid_value")
    session = ctx.get("session")
    if session is not None:
        if not isinstance(session, dict):
            problems.append("invalid_type")
        else:
            if "id" in session and not _is_int(session["id"]):
                problems.append("invalid_type")
            if "start" in session and not isinstance(session["start"], bool):
                problems.append("invalid_type")
    if "sessionId" in ctx and not (_is_int(ctx["sessionId"]) and 0 < ctx["sessionId"] < 2**63):
        problems.append("invalid_type")
    page = ctx.get("page")
    if page is not None:
        if not isinstance(page, dict):
            problems.append("invalid_type")
        else:
            problems += ["invalid_type" for value in page.values() if not isinstance(value, str)]
    if "ip" in ctx and ctx["ip"] not in SPECIAL_IPS and not _ip_ok(ctx["ip"]):
        problems.append("invalid_value")
    return problems


def _batch_problem(doc: dict[str, Any]) -> str | None:
    if not isinstance(doc.get("batch"), list):
        return "invalid_batch"
    if "sentAt" in doc and not _datetime_ok(doc["sentAt"]):
        return "invalid_batch"
    if "context" in doc and not isinstance(doc["context"], dict):
        return "invalid_batch"
    if not doc["batch"]:
        return "empty_batch"
    return None


class Recount:
    """What an importer should find in the generated files."""

    def __init__(self) -> None:
        self.records = 0
        self.units = 0
        self.valid = 0
        self.failed: Counter[str] = Counter()
        self.keys: Counter[tuple[int, str]] = Counter()
        self.user_agents: set[str] = set()
        self.ips: set[str] = set()
        self.events: list[dict[str, Any]] = []

    def reject(self, reason: str) -> None:
        self.units += 1
        self.failed[reason] += 1

    def event(self, ev: Any, connection_id: int, batch_context: dict[str, Any], *,
              single: bool) -> None:  # fmt: skip
        self.units += 1
        problems = event_problems(ev, batch_context, single=single)
        assert len(problems) <= 1, f"more than one problem {problems}: {ev}"
        if problems:
            self.failed[problems[0]] += 1
            return
        self.valid += 1
        self.events.append(ev)
        ctx = {**batch_context, **ev.get("context", {})}
        if "userAgent" in ctx:
            self.user_agents.add(ctx["userAgent"])
        if ctx.get("ip") and ctx["ip"] not in SPECIAL_IPS:
            self.ips.add(ctx["ip"])
        if "messageId" in ev:
            self.keys[(connection_id, ev["messageId"])] += 1

    def batch_line(self, raw: bytes, *, envelope: bool) -> None:
        self.records += 1
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.reject("invalid_json")
        if not isinstance(record, dict):
            return self.reject("invalid_record")
        doc = record
        if envelope:
            if not _datetime_ok(record.get("receivedAt")) or not _ip_ok(record.get("ip")):
                return self.reject("invalid_envelope")
            self.ips.add(record["ip"])
            doc = record["body"]
        problem = _batch_problem(doc)
        if problem:
            return self.reject(problem)
        for ev in doc["batch"]:
            self.event(ev, record["connectionId"], doc.get("context", {}), single=False)
        return None

    def event_line(self, raw: bytes) -> None:
        self.records += 1
        try:
            ev = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.reject("invalid_json")
        if not isinstance(ev, dict):
            return self.reject("invalid_record")
        return self.event(ev, ev.get("connectionId"), {}, single=True)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.keys.values())


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for line in f:
            assert line.endswith(b"\n") and line.strip(), f"blank or unterminated line in {path}"
            yield line


def recount_file(path: Path, into: Recount) -> None:
    form = path.name.split("-", 1)[0]
    if form in ("collector", "batches"):
        for line in _lines(path):
            into.batch_line(line, envelope=form == "collector")
    elif form == "export":
        into.records += 1
        for ev in orjson.loads(path.read_bytes()):
            into.event(ev, ev.get("connectionId") if isinstance(ev, dict) else None, {},
                       single=True)  # fmt: skip
    else:
        for line in _lines(path):
            into.event_line(line)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gen")
    generate(out, N, seed=SEED, workers=1)
    return out, orjson.loads((out / MANIFEST).read_bytes())


@pytest.fixture(scope="module")
def recount(generated: tuple[Path, dict[str, Any]]) -> Recount:
    out, manifest = generated
    total = Recount()
    for entry in manifest["files"]:
        recount_file(out / entry["name"], total)
    return total


# --- tests ----------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path,
                                              generated: tuple[Path, dict[str, Any]]) -> None:  # fmt: skip
    first, _ = generated
    generate(tmp_path, N, seed=SEED, workers=2)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_another_seed_gives_other_data(tmp_path: Path,
                                       generated: tuple[Path, dict[str, Any]]) -> None:  # fmt: skip
    first, manifest = generated
    other = generate(tmp_path, N, seed=SEED + 1, workers=1)
    a, b = manifest["files"][0]["name"], other["files"][0]["name"]
    assert (first / a).read_bytes() != (tmp_path / b).read_bytes()


def test_every_input_form_is_written(generated: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = generated
    names = {p.name for p in out.iterdir()}
    patterns = [r"collector-\d{5}\.jsonl\.gz", r"collector-\d{5}\.jsonl", r"batches-\d{5}\.jsonl",
                r"export-\d{5}\.json", r"events-\d{5}\.ndjson"]  # fmt: skip
    for pattern in patterns:
        assert any(re.fullmatch(pattern, n) for n in names), pattern
    assert names == {MANIFEST} | {f["name"] for f in manifest["files"]}
    assert not any(n.endswith(".tmp") for n in names)


def test_read_units_is_exactly_the_requested_number(generated: tuple[Path, dict[str, Any]]) -> None:
    _, m = generated
    assert m["read_units"] == N == sum(f["read_units"] for f in m["files"])
    assert m["read_units"] == m["expected_valid"] + sum(m["expected_failed_by_reason"].values())
    assert m["expected_failed"] == sum(m["expected_failed_by_reason"].values())


def test_a_new_run_replaces_the_files_of_the_previous_one(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    first = generate(tmp_path, 500, seed=1, workers=1)
    second = generate(tmp_path, 120, seed=2, workers=1)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"notes.txt", MANIFEST} | {f["name"] for f in second["files"]}
    assert len(first["files"]) != len(second["files"])


@pytest.mark.parametrize("events", [1, 7, 99, 101, 1234])
def test_plan_splits_exactly(events: int) -> None:
    specs = plan_files(events, seed=3)
    assert sum(s.units for s in specs) == events
    assert len({s.name for s in specs}) == len(specs)


def test_small_runs_are_exact_too(tmp_path: Path) -> None:
    for events in (1, 37):
        m = generate(tmp_path / str(events), events, seed=5, workers=1)
        total = Recount()
        for entry in m["files"]:
            recount_file(tmp_path / str(events) / entry["name"], total)
        assert total.units == m["read_units"] == events


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.integers(1, 600), seed=st.integers(0, 2**32))
def test_manifest_is_exact_for_any_seed_and_size(tmp_path: Path, events: int, seed: int) -> None:
    out = tmp_path / f"{events}-{seed}"
    m = generate(out, events, seed=seed, workers=1)
    total = Recount()
    for entry in m["files"]:
        recount_file(out / entry["name"], total)
    assert total.units == m["read_units"] == events
    assert total.valid == m["expected_valid"]
    assert dict(total.failed) == {k: v for k, v in m["expected_failed_by_reason"].items() if v}
    assert total.duplicates == m["duplicates"]


def test_every_reason_code_is_present(generated: tuple[Path, dict[str, Any]]) -> None:
    _, m = generated
    assert set(m["expected_failed_by_reason"]) == set(REASONS)
    assert all(n > 0 for n in m["expected_failed_by_reason"].values()), m[
        "expected_failed_by_reason"
    ]
    share = m["expected_failed"] / m["read_units"]
    assert 0.015 < share < 0.05
    for reason, variants in m["expected_failed_by_variant"].items():
        assert sum(variants.values()) == m["expected_failed_by_reason"][reason]


def test_manifest_matches_a_recount_of_the_files(generated: tuple[Path, dict[str, Any]],
                                                 recount: Recount) -> None:  # fmt: skip
    _, m = generated
    assert recount.records == m["records"]
    assert recount.units == m["read_units"]
    assert recount.valid == m["expected_valid"]
    assert dict(recount.failed) == {k: v for k, v in m["expected_failed_by_reason"].items() if v}
    assert recount.duplicates == m["duplicates"] > 0


def test_per_file_counts_match_a_recount(generated: tuple[Path, dict[str, Any]]) -> None:
    out, m = generated
    for entry in m["files"]:
        one = Recount()
        recount_file(out / entry["name"], one)
        assert (one.records, one.units, one.valid) == (
            entry["records"],
            entry["read_units"],
            entry["expected_valid"],
        ), entry["name"]
        assert dict(one.failed) == entry["expected_failed_by_reason"], entry["name"]


def test_user_agents_and_ips_are_diverse(recount: Recount) -> None:
    assert len(AGENTS) >= 200
    assert sum(a.kind == BOT for a in AGENTS) >= 15
    assert len(recount.user_agents) >= 60
    assert any("Googlebot" in a.ua for a in AGENTS)
    assert len(recount.ips) >= 150
    assert any(":" in ip for ip in recount.ips)
    public = [ip for ip in recount.ips if ipaddress.ip_address(ip).is_global]
    assert len(public) / len(recount.ips) > 0.9


def test_events_look_like_real_traffic(recount: Recount) -> None:
    events = recount.events
    types = Counter(ev["type"] for ev in events)
    assert set(types) == TYPES
    assert types["page"] > types["alias"]
    contexts = [ev.get("context", {}) for ev in events]
    assert any("utm_source=" in c.get("page", {}).get("url", "") for c in contexts)
    assert any(c.get("session", {}).get("start") is True for c in contexts)
    assert any("sessionId" in c for c in contexts)
    assert any(c.get("ip") in SPECIAL_IPS for c in contexts)
    assert any("originalTimestamp" in ev for ev in events)
    assert any("messageId" not in ev for ev in events)
    anonymous = {ev["anonymousId"] for ev in events if ev["type"] == "identify" and
                 "anonymousId" in ev}  # fmt: skip
    assert any(ev.get("anonymousId") in anonymous and ev["type"] != "identify" for ev in events)
    values = [v for ev in events for v in ev.get("properties", {}).values()]
    for kind in (str, int, float, bool, dict, list, type(None)):
        assert any(type(v) is kind for v in values), kind
    received = [ev["receivedAt"] for ev in events if "receivedAt" in ev]
    assert min(received) > "2026-10-02" and max(received) < "2026-11-01T01"
    stamps = [ev["timestamp"] for ev in events if "timestamp" in ev]  # client clocks: skewed
    assert min(stamps) > "2026-10-01T14" and max(stamps) < "2026-11-01T10"


def test_iso_ms() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_761_955_200_123) == "2025-11-01T00:00:00.123Z"


def _cli(argv: list[str]) -> int:
    """Run `eventpipe ARGV` with only this job registered (as cli.main does)."""
    parser = argparse.ArgumentParser(prog="eventpipe")
    generate_job.register(parser.add_subparsers(dest="command", required=True))
    args, extra = parser.parse_known_args(argv)
    return args.func(args, extra)


def test_cli_lists_the_job() -> None:
    assert "eventpipe.jobs.generate" in cli.JOB_MODULES


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli(["generate", "--events", "300", "--out", str(tmp_path), "--seed", "2",
                 "--base-date", "2025-01-01"])  # fmt: skip
    assert code == 0
    m = orjson.loads((tmp_path / MANIFEST).read_bytes())
    assert m["read_units"] == 300 and m["base_date"] == "2025-01-01T00:00:00Z"
    out = capsys.readouterr().out
    assert "300 read units" in out and "invalid_json" in out


def test_cli_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _cli(["generate", "--help"])
    text = capsys.readouterr().out
    assert "--events" in text and "--seed" in text and "_manifest.json" in text
