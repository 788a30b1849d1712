"""Generate a directory of realistic raw event files with an exact manifest.

The run is split into files of ~20-50k read units (fewer for small runs). Each
file is generated from its own `random.Random` seeded with (seed, file index),
so the output is byte-identical for a seed whatever the number of workers, and
files can be written in parallel with constant memory.

Input forms (all accepted by the importer):

- ``collector-NNNNN.jsonl[.gz]``: landing envelopes
  ``{"receivedAt", "ip", "connectionId", "body": <batch document>}``, one per line;
- ``batches-NNNNN.jsonl``: bare batch documents ``{"connectionId", "batch", "context",
  "sentAt"}``, one per line;
- ``export-NNNNN.json``: one JSON array of events, each with its own ``connectionId``,
  ``sentAt`` and ``receivedAt``;
- ``events-NNNNN.ndjson``: one such self-contained event per line.

Read units: each event of a record that parses as a valid record is one unit; a
record rejected as a whole is one unit. ``read_units`` equals the requested number
of events exactly, and ``read_units = expected_valid + sum(expected_failed_by_reason)``.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from eventpipe.sample import invalid
from eventpipe.sample.events import DAY_MS, Event, EventFactory, FastRandom, Visitor, iso_ms
from eventpipe.sample.writers import Sink

MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1
COLLECTOR, BATCHES, EXPORT, EVENTS = "collector", "batches", "export", "events"
DEFAULT_BASE_DATE = datetime(2026, 11, 1, tzinfo=UTC)
MAX_UNITS_PER_FILE = 40_000
MIN_UNITS_PER_FILE = 20

EVENT_FAULT_EVERY = 40  # one broken event per ~40 events (2.5%)
RECORD_FAULT_EVERY = 20  # one rejected batch line per ~20 lines (~0.7% of units)
LINE_FAULT_EVERY = 200  # one rejected ndjson line per ~200 lines (0.5%)
DUPLICATE_RATE = 0.01  # per record (collector, batches) or per event (export, events)
OWN_SENT_AT_RATE = 0.1  # events of a batch carrying their own sentAt

# One block of ten files: all five kinds first, then the weighted rest.
_BLOCK_FIRST = ((COLLECTOR, True), (COLLECTOR, False), (BATCHES, False), (EXPORT, False),
                (EVENTS, False))  # fmt: skip
_BLOCK_REST = ((COLLECTOR, True), (COLLECTOR, True), (COLLECTOR, False), (BATCHES, False),
               (EVENTS, False))  # fmt: skip
_SUFFIX = {COLLECTOR: ".jsonl", BATCHES: ".jsonl", EXPORT: ".json", EVENTS: ".ndjson"}


@dataclass(frozen=True)
class FileSpec:
    """One output file to generate."""

    index: int
    name: str
    form: str
    units: int
    seed: int
    start_ms: int
    end_ms: int
    ordinal: int  # position among the files of the same form: rotates the fault reasons


@dataclass
class FileStats:
    """What one file holds; the manifest's per-file entry."""

    name: str
    form: str
    records: int = 0
    read_units: int = 0
    events: int = 0  # array elements and single-event lines (whatever their validity)
    expected_valid: int = 0
    duplicates: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)  # "reason/variant"

    def fail(self, reason: str, variant: str) -> None:
        self.failed[reason] += 1
        self.variants[f"{reason}/{variant}"] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "form": self.form,
            "gzip": self.name.endswith(".gz"),
            "records": self.records,
            "read_units": self.read_units,
            "events": self.events,
            "expected_valid": self.expected_valid,
            "expected_failed_by_reason": dict(sorted(self.failed.items())),
            "duplicates": self.duplicates,
        }


def plan_files(events: int, seed: int, base_date: datetime = DEFAULT_BASE_DATE, days: int = 30,
               units_per_file: int | None = None) -> list[FileSpec]:  # fmt: skip
    """Split `events` read units into files; every form appears once there are >= 5 files."""
    if events < 1:
        raise ValueError("events must be >= 1")
    per_file = units_per_file or max(MIN_UNITS_PER_FILE, min(MAX_UNITS_PER_FILE, events // 20))
    n_files = -(-events // per_file)
    base, extra = divmod(events, n_files)
    rng = random.Random(f"eventpipe.sample/plan/{seed}")
    kinds: list[tuple[str, bool]] = []
    while len(kinds) < n_files:
        first, rest = list(_BLOCK_FIRST), list(_BLOCK_REST)
        rng.shuffle(first)
        rng.shuffle(rest)
        kinds += first + rest
    end_ms = int(base_date.timestamp() * 1000)
    ordinals: Counter[str] = Counter()
    specs = []
    for i, (form, gz) in enumerate(kinds[:n_files]):
        name = f"{form}-{i:05d}{_SUFFIX[form]}{'.gz' if gz else ''}"
        specs.append(FileSpec(i, name, form, base + (i < extra), seed, end_ms - days * DAY_MS,
                              end_ms, ordinals[form]))  # fmt: skip
        ordinals[form] += 1
    return specs


class _Faults:
    """When to break the next record or event, and with which reason (in rotation)."""

    def __init__(self, rng: random.Random, ordinal: int, record_reasons: tuple[str, ...],
                 record_every: int, event_reasons: tuple[str, ...]) -> None:  # fmt: skip
        self.rng = rng
        self.record_reasons = record_reasons
        self.event_reasons = event_reasons
        self.record_every = record_every
        self.ri = self.ei = ordinal
        self.record_left = rng.randint(1, record_every)
        self.event_left = rng.randint(1, EVENT_FAULT_EVERY)

    def record(self) -> str | None:
        """The reason to reject the next record for, or None."""
        self.record_left -= 1
        if self.record_left:
            return None
        self.record_left = self.rng.randint(1, 2 * self.record_every - 1)
        self.ri += 1
        return self.record_reasons[self.ri % len(self.record_reasons)]

    def event(self) -> str | None:
        """The reason to break the next event for, or None."""
        self.event_left -= 1
        if self.event_left:
            return None
        self.event_left = self.rng.randint(1, 2 * EVENT_FAULT_EVERY - 1)
        self.ei += 1
        return self.event_reasons[self.ei % len(self.event_reasons)]


def _factory(spec: FileSpec) -> tuple[random.Random, EventFactory]:
    rng = FastRandom(f"eventpipe.sample/{spec.seed}/{spec.index}")
    pool = max(16, min(500, spec.units // 40))
    return rng, EventFactory(rng, spec.start_ms, spec.end_ms, pool)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def _write_batch_lines(spec: FileSpec, sink: Sink, stats: FileStats) -> None:
    """collector-* (envelopes) and batches-* (bare batch documents)."""
    rng, f = _factory(spec)
    envelope = spec.form == COLLECTOR
    record_reasons = invalid.ENVELOPE_LINE_REASONS if envelope else invalid.BATCH_LINE_REASONS
    faults = _Faults(rng, spec.ordinal, record_reasons, RECORD_FAULT_EVERY, invalid.EVENT_REASONS)
    recent: deque[tuple[bytes, int]] = deque(maxlen=16)
    remaining = spec.units
    while remaining:
        stats.records += 1
        if recent and rng.random() < DUPLICATE_RATE:
            line, n = recent[rng.randrange(len(recent))]
            if n <= remaining:  # a client retry: the same line again
                sink.write(line)
                remaining -= n
                stats.read_units += n
                stats.events += n
                stats.expected_valid += n
                stats.duplicates += n
                continue
        reason = faults.record()
        v = f.pick()
        size = f.batch_size(v) if reason else min(f.batch_size(v), remaining)
        batch: list[Any] = []
        clean = True
        for _ in range(size):
            broken = None if reason else faults.event()
            if broken is None:
                ev = f.next_event(v, request_ip=envelope)
                if "messageId" not in ev:
                    clean = False
                elif rng.random() < OWN_SENT_AT_RATE:
                    ev["sentAt"] = iso_ms(v.clock + v.skew + rng.randint(5, 3000))
            else:
                ev, variant = invalid.break_event(f, v, broken, request_ip=envelope, single=False)
                stats.fail(broken, variant)
                clean = False
            batch.append(ev)
        sent_at, received_at = f.batch_times(v)
        doc: dict[str, Any] = {} if envelope else {"connectionId": v.source.connection_id}
        doc["batch"] = batch
        doc["context"] = v.shared
        if not envelope and rng.random() < 0.7:  # a backend forwarding its client's IP
            doc["context"] = {**v.shared, "ip": v.ip}
        doc["sentAt"] = sent_at
        if envelope:
            doc["writeKey"] = v.source.write_key
            record: dict[str, Any] = {"receivedAt": received_at, "ip": v.ip,
                                      "connectionId": v.source.connection_id, "body": doc}  # fmt: skip
        else:
            record = doc
        variant = ""
        if reason == invalid.EMPTY_BATCH:
            doc["batch"], variant = [], "empty"
        elif reason == invalid.INVALID_BATCH:
            variant = invalid.break_batch(rng, doc)
        elif reason == invalid.INVALID_ENVELOPE:
            variant = invalid.break_envelope(rng, record)
        line = _dumps(record)
        if reason == invalid.INVALID_JSON:
            bad, variant = invalid.bad_json(rng, line)
            line = bad + b"\n"
        elif reason == invalid.INVALID_RECORD:
            bad, variant = invalid.bad_record(rng)
            line = bad + b"\n"
        sink.write(line)
        if reason:
            stats.fail(reason, variant)
            stats.read_units += 1
            remaining -= 1
        else:
            stats.read_units += size
            stats.events += size
            remaining -= size
            if clean:
                recent.append((line, size))
    stats.expected_valid = stats.read_units - sum(stats.failed.values())


def _single_events(spec: FileSpec, stats: FileStats, line_reasons: tuple[str, ...],
                   ) -> Iterator[bytes]:  # fmt: skip
    """Self-contained events (export and ndjson files), serialised without newline."""
    rng, f = _factory(spec)
    event_reasons = tuple(r for r in invalid.EVENT_REASONS if r != invalid.INVALID_EVENT or (
        spec.form == EXPORT))  # fmt: skip
    faults = _Faults(rng, spec.ordinal, line_reasons or ("",), LINE_FAULT_EVERY, event_reasons)
    recent: deque[tuple[bytes, Event, Visitor]] = deque(maxlen=32)
    for _ in range(spec.units):
        stats.read_units += 1
        if recent and rng.random() < DUPLICATE_RATE:
            data, ev, v = recent[rng.randrange(len(recent))]
            if rng.random() < 0.5:  # re-sent later: same messageId, new sentAt/receivedAt
                sent = max(v.clock, _received_ms(ev)) + rng.randint(1000, 600_000)
                data = orjson.dumps({**ev, "sentAt": iso_ms(sent + v.skew),
                                     "receivedAt": iso_ms(sent + rng.randint(20, 900))})  # fmt: skip
            stats.duplicates += 1
            stats.events += 1
            yield data
            continue
        reason = faults.record() if line_reasons else None
        v = f.pick()
        if reason:
            ev = f.stamp_single(v, f.next_event(v, request_ip=False))
            if reason == invalid.INVALID_JSON:
                data, variant = invalid.bad_json(rng, orjson.dumps(ev))
            else:
                data, variant = invalid.bad_record(rng)
            stats.fail(reason, variant)
            yield data
            continue
        stats.events += 1
        broken = faults.event()
        if broken:
            bad, variant = invalid.break_event(f, v, broken, request_ip=False, single=True)
            stats.fail(broken, variant)
            yield orjson.dumps(bad)
            continue
        ev = f.stamp_single(v, f.next_event(v, request_ip=False))
        data = orjson.dumps(ev)
        if "messageId" in ev:
            recent.append((data, ev, v))
        yield data
    stats.expected_valid = stats.read_units - sum(stats.failed.values())


def _received_ms(ev: Event) -> int:
    dt = datetime.fromisoformat(ev["receivedAt"])
    return int(dt.timestamp() * 1000)


def _write_export(spec: FileSpec, sink: Sink, stats: FileStats) -> None:
    stats.records = 1
    sink.write(b"[\n")
    separator = b""
    for data in _single_events(spec, stats, ()):
        sink.write(separator + data)
        separator = b",\n"
    sink.write(b"\n]\n")


def _write_ndjson(spec: FileSpec, sink: Sink, stats: FileStats) -> None:
    for data in _single_events(spec, stats, invalid.EVENT_LINE_REASONS):
        stats.records += 1
        sink.write(data + b"\n")


def write_file(spec: FileSpec, out_dir: Path) -> FileStats:
    """Generate one file into `out_dir` and return its counts."""
    stats = FileStats(spec.name, spec.form)
    with Sink(Path(out_dir) / spec.name) as sink:
        if spec.form in (COLLECTOR, BATCHES):
            _write_batch_lines(spec, sink, stats)
        elif spec.form == EXPORT:
            _write_export(spec, sink, stats)
        else:
            _write_ndjson(spec, sink, stats)
    return stats


def _write_file_args(args: tuple[FileSpec, Path]) -> FileStats:
    return write_file(*args)


def generate(out_dir: Path | str, events: int, seed: int = 0,
             base_date: datetime = DEFAULT_BASE_DATE, days: int = 30,
             units_per_file: int | None = None, workers: int | None = None,
             ) -> dict[str, Any]:  # fmt: skip
    """Write `events` read units of raw input into `out_dir`, plus `_manifest.json`.

    Returns the manifest (with an extra, non-persisted "seconds" entry).
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = plan_files(events, seed, base_date, days, units_per_file)
    remove_previous(out)
    workers = max(1, min(workers or os.cpu_count() or 1, len(specs)))
    jobs = [(spec, out) for spec in specs]
    if workers == 1:
        all_stats = [_write_file_args(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            all_stats = list(pool.map(_write_file_args, jobs))
    manifest = build_manifest(all_stats, seed, base_date, days, events)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, out / MANIFEST)
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    return manifest


def remove_previous(out: Path) -> None:
    """Delete the files of an earlier run listed in `out`'s manifest, then the manifest.

    Nothing else in the directory is touched; the manifest goes first, so a run
    that stops half-way never leaves a manifest describing files it did not write.
    """
    path = out / MANIFEST
    if not path.exists():
        return
    previous = orjson.loads(path.read_bytes())
    path.unlink()
    for entry in previous.get("files", []):
        name = Path(entry["name"]).name  # never outside `out`
        (out / name).unlink(missing_ok=True)


def build_manifest(all_stats: list[FileStats], seed: int, base_date: datetime, days: int,
                   requested: int) -> dict[str, Any]:  # fmt: skip
    """The manifest document: totals, failures by reason and variant, per-file counts."""
    failed: Counter[str] = Counter({reason: 0 for reason in invalid.REASONS})
    variants: Counter[str] = Counter()
    forms: Counter[str] = Counter()
    for s in all_stats:
        failed.update(s.failed)
        variants.update(s.variants)
        forms[s.form] += 1
    by_variant: dict[str, dict[str, int]] = {}
    for key, n in sorted(variants.items()):
        reason, variant = key.split("/", 1)
        by_variant.setdefault(reason, {})[variant] = n
    return {
        "version": MANIFEST_VERSION,
        "generator": "eventpipe.sample",
        "seed": seed,
        "base_date": base_date.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days": days,
        "requested_events": requested,
        "file_count": len(all_stats),
        "files_by_form": dict(sorted(forms.items())),
        "records": sum(s.records for s in all_stats),
        "read_units": sum(s.read_units for s in all_stats),
        "events": sum(s.events for s in all_stats),
        "expected_valid": sum(s.expected_valid for s in all_stats),
        "expected_failed": sum(failed.values()),
        "expected_failed_by_reason": dict(failed),
        "expected_failed_by_variant": by_variant,
        "duplicates": sum(s.duplicates for s in all_stats),
        # what an import into an empty lake writes: the valid events, each messageId once
        "expected_written": sum(s.expected_valid - s.duplicates for s in all_stats),
        "files": [s.to_json() for s in all_stats],
    }
