"""Count summaries: how many rows of each (connectionId, type, event) an event file holds.

Every event file that a lake transaction makes visible gets one, written by the same
commit (`eventpipe.io.lake_transaction`: import, stream, ingest, reprocess, identity,
compaction all commit through it), beside it in its partition folder:
`events/date=D/_counts.<file>.json` (the `_` prefix hides it from Parquet readers). It
names the file's size and modification time (`FileSignature`) and is trusted only while
the file still has them, so a file rewritten by any means is scanned instead: a count is
exact whatever wrote the lake.

`LakeReader.count_events` answers from them a count whose filter is only whole UTC days
of `timestamp` and conditions on `connectionId`, `type` and `event` (`count_plan`):
the days inside the range are summed from the summaries of their files, the partial days
at the ends (and files without a summary) are scanned.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from eventpipe.query.duckdb_dialect import DUCKDB
from eventpipe.query.sql import Predicate, render_all
from eventpipe.query.tree import Condition, Filter
from eventpipe.serving.event_query import connection_condition
from eventpipe.serving.index_format import FileSignature

log = logging.getLogger(__name__)

PREFIX = "_counts."
SUFFIX = ".json"
VERSION = 1
KEY_COLUMNS = ("connectionId", "type", "event")
"""What a summary counts rows by (the day is the partition's)."""
SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("connectionId", pa.int32()),
        pa.field("type", pa.string()),
        pa.field("event", pa.string()),
        pa.field("rows", pa.int64()),
    ]
)
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
_DAY = dt.timedelta(days=1)


def summary_path(event_file: str) -> str:
    """The summary file of the event file `event_file` (beside it)."""
    folder, name = os.path.split(event_file)
    return os.path.join(folder, f"{PREFIX}{name}{SUFFIX}")


def write_summary(event_file: str, target: str | None = None) -> str | None:
    """Count the rows of `event_file` by KEY_COLUMNS and write its summary to `target`
    (default `summary_path(event_file)`), whole (aside, then renamed). Returns `target`;
    None (logged) when the file cannot be read as events: it will be scanned."""
    target = target or summary_path(event_file)
    try:
        table = pq.read_table(event_file, columns=list(KEY_COLUMNS))
    except (OSError, pa.ArrowException) as exc:
        log.warning("no count summary for %s: %s", event_file, exc)
        return None
    groups = table.group_by(list(KEY_COLUMNS), use_threads=False).aggregate([([], "count_all")])
    signature = FileSignature.of(event_file)
    body = {
        "version": VERSION,
        "file": signature.name,
        "size": signature.size,
        "mtime_ns": signature.mtime_ns,
        "rows": table.num_rows,
        "groups": [list(row.values()) for row in groups.to_pylist()],
    }
    with open(target + ".pending", "w") as handle:
        json.dump(body, handle, separators=(",", ":"))
    os.replace(target + ".pending", target)
    return target


@lru_cache(maxsize=4096)
def _load(path: str, signature: FileSignature) -> tuple[tuple, ...] | None:
    """The groups of summary `path` if it describes the file version `signature`."""
    try:
        with open(path) as handle:
            body = json.load(handle)
    except (OSError, ValueError):
        return None
    if body.get("version") != VERSION or (body["file"], body["size"], body["mtime_ns"]) != (
        signature.name,
        signature.size,
        signature.mtime_ns,
    ):
        return None
    return tuple(tuple(group) for group in body["groups"])


def read_summary(event_file: str) -> tuple[tuple, ...] | None:
    """The (connectionId, type, event, rows) groups of `event_file`, or None when it has
    no summary describing its current version (then it must be scanned)."""
    try:
        signature = FileSignature.of(event_file)
    except FileNotFoundError:
        return None
    return _load(summary_path(event_file), signature)


@dataclass(frozen=True)
class CountPlan:
    """A count the summaries can answer for whole days: `predicate` over the summary's
    columns (the workspace restriction included), the `timestamp` range [start, end)."""

    predicate: Predicate
    start: dt.datetime | None
    end: dt.datetime | None

    def whole_day(self, day: dt.date) -> bool:
        """Whether every row of `day` is inside the range."""
        first = dt.datetime.combine(day, dt.time(), dt.UTC)
        return (self.start is None or self.start <= first) and (
            self.end is None or first + _DAY <= self.end
        )


def _time_range(conditions: Sequence[Condition]) -> tuple[dt.datetime | None, ...] | None:
    """The [start, end) range of `timestamp` conditions that all hold, None if one is of
    another kind (e.g. `is not`)."""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    for c in conditions:
        low = high = None
        moments = [v for v in c.operands if isinstance(v, dt.datetime)]
        if len(moments) != len(c.operands) or not moments:
            return None
        if c.operator == "is on or after":
            low = moments[0]
        elif c.operator == "is after":
            low = moments[0] + _ONE_MICROSECOND
        elif c.operator == "is before":
            high = moments[0]
        elif c.operator == "is on or before":
            high = moments[0] + _ONE_MICROSECOND
        elif c.operator in ("is", "is between"):
            low, high = moments[0], moments[-1] + _ONE_MICROSECOND
        else:
            return None
        start = low if start is None or (low is not None and low > start) else start
        end = high if end is None or (high is not None and high < end) else end
    return start, end


def count_plan(predicate: Predicate | None, connections: frozenset[int] | None) -> CountPlan | None:
    """The summary plan of a count whose filter is only `timestamp` bounds (all required)
    and conditions on KEY_COLUMNS (any operator, `or` groups too); else None."""
    tree = predicate.tree if predicate is not None else Filter("and", ())
    groups = predicate.groups if predicate is not None else ()
    if tree is None or not tree.all_must_hold:
        return None
    timed = [c for c in tree.conditions if c.target.property == "timestamp"]
    others = Filter("and", tuple(c for c in tree.conditions if c not in timed))
    if not all(f.columns <= set(KEY_COLUMNS) for f in (others, *groups)):
        return None
    bounds = _time_range(timed)
    if bounds is None:
        return None
    keyed = render_all(others, groups, DUCKDB)
    if connections is not None:
        restriction = connection_condition(connections, 't."connectionId"')
        keyed = replace(keyed, sql=f"{restriction} AND ({keyed.sql})")
    return CountPlan(keyed, *bounds)


def count_from_summaries(
    cursor: duckdb.DuckDBPyConnection, files: Sequence[str], plan: CountPlan
) -> tuple[int, list[str]]:
    """The rows of `files` matching `plan`'s predicate, from their summaries, and the files
    that have none (to be scanned)."""
    groups: list[tuple] = []
    missing: list[str] = []
    for path in files:
        found = read_summary(path)
        if found is None:
            missing.append(path)
        else:
            groups.extend(found)
    if not groups:
        return 0, missing
    columns = list(zip(*groups, strict=True))
    table = pa.Table.from_arrays(
        [pa.array(values, type=f.type) for values, f in zip(columns, SUMMARY_SCHEMA, strict=True)],
        schema=SUMMARY_SCHEMA,
    )
    cursor.register("_count_summaries", table)
    try:
        sql = f"SELECT sum(t.rows) FROM _count_summaries AS t WHERE {plan.predicate.sql}"
        total = cursor.execute(sql, dict(plan.predicate.params)).fetchall()[0][0]
    finally:
        cursor.unregister("_count_summaries")
    return int(total or 0), missing
