"""Run list-events queries with DuckDB over the hive-partitioned Parquet lake.

Each request lists the partition folders afresh, prunes them to the `timestamp` bounds
of the filter, serves the page through the serving index where it can and otherwise
scans partitions newest first in growing batches; ties are broken by `messageId`, so
paging never repeats or skips a row. A request whose file vanished (a job replaced it)
starts over, up to MAX_ATTEMPTS times. The plan in full: docs/read-api.md ("How a page
is found").
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from eventpipe.api.limits import Deadline, ServerBusy, ServingLimits
from eventpipe.query.duckdb_dialect import DUCKDB, quote_identifier, table_source
from eventpipe.query.sql import Predicate
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.lake_layout import Partition, list_partitions
from eventpipe.serving.count_summary import count_from_summaries, count_plan
from eventpipe.serving.event_query import (
    EventQuery,
    Seek,
    empty_page,
    order_sql,
    scoped_predicate,
    seek_predicate,
)
from eventpipe.serving.index_lookup import CANDIDATE_CAP, IndexCatalog, IndexedPartition, by_file
from eventpipe.serving.index_pages import page_by_position, page_from_index, seek_range

__all__ = ["ORDER_COLUMNS", "EventQuery", "LakeReader", "Partition"]

log = logging.getLogger(__name__)

ORDER_COLUMNS: tuple[str, ...] = (
    "kpid",
    "connectionId",
    "anonymousId",
    "channel",
    "category",
    "event",
    "groupId",
    "messageId",
    "name",
    "receivedAt",
    "sentAt",
    "originalTimestamp",
    "timestamp",
    "type",
    "userId",
)
_SCAN_OPTIONS = "hive_partitioning = false, filename = true, file_row_number = true"
DENSE_SPAN = 65_536  # a wider row range of one file is read with the filter applied again
RECENT_ROWS = 32_768  # a filtered page is first looked for among the newest rows of its batch
ROW_STORE_ROWS = 1_000  # at most this many candidate rows are read from the row stores
SEEK_ROWS_PER_EVENT = 8  # ... or, for a keyset page (a seek), this many per event asked for
MAX_ATTEMPTS = 8  # a request whose files vanished (a job replaced them) starts over
HEAVY_SECONDS = 1.0
"""A request that ran this long replaces the DuckDB database when it ends: DuckDB keeps
memory a heavy query used (not in its buffer pool: ~400 MB after a 100-condition json
filter over 200k events) until its database is closed."""
DATABASE_REQUESTS = 500
"""A database that served this many requests is replaced too: what ordinary queries leave
behind grows with the lake (42 MB after 300 requests on 200k events) until it closes."""
_LOGGED_QUERY_CHARS = 2_000  # a failed query is logged with at most this much of its text


FileScan = tuple[str, tuple[int, ...] | None]
"""A file to read: all its rows (None), or only the listed candidate row numbers."""


@dataclass
class ScanPlan:
    """What a query reads: per partition, whole files or candidate rows; whether the index
    lookup found too many candidates."""

    scans: dict[dt.date, list[FileScan]]
    over_cap: bool = False


def _over_limit(reason: str) -> ServerBusy:
    """The 503 of a query stopped by a limit."""
    return ServerBusy(f"{reason}: narrow the filter or its timestamp range")


def _described(query: EventQuery) -> str:
    """`query` for a log line, cut to _LOGGED_QUERY_CHARS (a filter can be 64 KB)."""
    text = repr(query)
    cut = len(text) - _LOGGED_QUERY_CHARS
    return text if cut <= 0 else f"{text[:_LOGGED_QUERY_CHARS]}... ({cut} more characters)"


def prune(partitions: list[Partition], predicate: Predicate | None) -> list[Partition]:
    """The partitions that can hold rows matching the predicate's date bounds."""
    if predicate is None:
        return partitions
    low, high = predicate.min_date, predicate.max_date
    return [
        p for p in partitions if (low is None or p.day >= low) and (high is None or p.day <= high)
    ]


_T = TypeVar("_T")
_Work = Callable[[duckdb.DuckDBPyConnection, EventQuery, list[Partition]], _T]


def seek_prune(partitions: list[Partition], query: EventQuery) -> list[Partition]:
    """The partitions that can hold rows at or beyond the query's seek (all without one)."""
    if query.seek is None:
        return partitions
    day = query.seek.timestamp.astimezone(dt.UTC).date()
    return [p for p in partitions if (p.day >= day if query.ascending else p.day <= day)]


def _scoped(query: EventQuery) -> EventQuery:
    """`query` with its seek and its workspace restriction in its predicate (so in every
    plan)."""
    if query.seek is not None:
        query = replace(query, predicate=seek_predicate(query, DUCKDB))
    if query.connections is None:
        return query
    return replace(query, predicate=scoped_predicate(query))


class LakeReader:
    """Answers list-events queries over one lake folder; safe to share between threads."""

    dialect = DUCKDB
    schema = arrow_schema()

    def __init__(
        self,
        lake: str | os.PathLike[str],
        dense_span: int = DENSE_SPAN,
        use_index: bool = True,
        recent_rows: int = RECENT_ROWS,
        candidate_cap: int = CANDIDATE_CAP,
        row_store_rows: int = ROW_STORE_ROWS,
        limits: ServingLimits | None = None,
        use_summaries: bool = True,
    ) -> None:
        self.lake = Path(lake).resolve()
        self.events_dir = self.lake / "events"
        self.dense_span = dense_span
        self.recent_rows = recent_rows
        self.candidate_cap = candidate_cap
        self.row_store_rows = row_store_rows
        self.indexes = IndexCatalog(self.lake) if use_index else None
        self.use_summaries = use_summaries  # count whole days from the count summaries
        self.limits = limits or ServingLimits()
        self._slots = threading.BoundedSemaphore(self.limits.max_queries)
        self._lock = threading.Lock()
        self._served = 0  # requests the current database has served
        self._db = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory database that can only read inside the lake folder."""
        db = duckdb.connect(":memory:")
        db.execute("SET GLOBAL TimeZone = 'UTC'")
        db.execute("SET GLOBAL parquet_metadata_cache = true")
        # DuckDB 2.0.0 fails an internal assertion (and invalidates the database) on late
        # materialisation with a filter on a struct field; _page does its own instead.
        db.execute("SET GLOBAL late_materialization_max_rows = 0")
        db.execute("SET GLOBAL memory_limit = $limit", {"limit": self.limits.memory_limit})
        db.execute("SET GLOBAL temp_directory = ''")  # no spilling: the limit is a bound
        allowed = str(self.lake).rstrip("/") + "/"
        db.execute("SET allowed_directories = $dirs", {"dirs": [allowed]})
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
        return db

    def partitions(self) -> list[Partition]:
        """The lake's current partitions, oldest first."""
        return list_partitions(self.lake, "events")

    def list_events(self, query: EventQuery) -> pa.Table:
        """The page of events `query` asks for, as an Arrow table of its columns, among
        the rows of its connections (its workspace's): the restriction becomes part of the
        predicate, so every scan, count, index candidate check and fetch applies it.

        Raises ServerBusy when a limit stops it: no free query slot within the statement
        timeout, the timeout itself, or the memory limit.
        """
        if query.connections is not None and not query.connections:
            return self._empty(query.columns)  # a workspace without connections
        return self._run(_scoped(query), self._list_events)

    def count_events(self, query: EventQuery) -> int:
        """How many events match `query` (its connections and predicate; paging, order and
        columns are ignored), under the same limits as `list_events`. Whole days of a
        count on `timestamp`, `connectionId`, `type` and `event` only are summed from the
        count summaries (`eventpipe.serving.count_summary`)."""
        if query.connections is not None and not query.connections:
            return 0
        return self._run(_scoped(query), self._count_events)

    def _run(self, query: EventQuery, work: _Work[_T]) -> _T:
        """`work` in a query slot, on a cursor of its own, within the statement timeout."""
        limits = self.limits
        if not self._slots.acquire(timeout=limits.queue_timeout):
            raise ServerBusy(
                f"the server is already running {limits.max_queries} queries "
                "(--max-queries); try again"
            )
        try:
            return self._guarded(query, work)
        finally:
            self._slots.release()

    def _guarded(self, query: EventQuery, work: _Work[_T]) -> _T:
        """`work` on a cursor of its own, within the statement timeout."""
        limits = self.limits
        db = self._db
        cursor = db.cursor()  # one per request: connections are not thread-safe
        deadline = Deadline(cursor, limits.statement_timeout)
        started = time.monotonic()
        try:
            with deadline:
                return self._again_on_change(cursor, query, work)
        except duckdb.InterruptException:
            if not deadline.expired:
                raise
            timeout = f"{limits.statement_timeout:g} s, --statement-timeout"
            raise _over_limit(
                f"the query ran longer than the statement timeout ({timeout})"
            ) from None
        except duckdb.OutOfMemoryException:
            log.warning("query over the memory limit: %s", _described(query))
            memory = f"{limits.memory_limit}, --memory-limit"
            raise _over_limit(
                f"the query needs more memory than the server's limit ({memory})"
            ) from None
        except duckdb.FatalException:
            # DuckDB invalidates a database after an internal error: start a new one so
            # that one bad query does not fail every later request.
            log.exception("query failed, DuckDB database restarted: %s", _described(query))
            self._replace(db)
            raise
        except duckdb.Error as exc:
            damaged = self._damaged_file(exc)
            if damaged is None:
                log.exception("query failed: %s", _described(query))
                raise
            log.error("%s (query: %s)", damaged.message, _described(query))
            raise damaged from None
        finally:
            cursor.close()
            with self._lock:
                self._served += 1
                served = self._served
            if time.monotonic() - started >= HEAVY_SECONDS or served >= DATABASE_REQUESTS:
                self._replace(db)  # what its queries left goes with the database

    def _damaged_file(self, exc: duckdb.Error) -> ServerBusy | None:
        """The 503 of a query stopped by an event file DuckDB cannot read (truncated,
        garbage), naming its partition; None when the error names no file the lake holds."""
        folder = str(self.events_dir)
        found = re.search(re.escape(folder) + r"/([^'\"\s]+)", str(exc))
        if found is None or not (self.events_dir / found.group(1)).is_file():  # or vanished
            return None
        partition, _, name = found.group(1).rpartition("/")
        reason = str(exc).splitlines()[0].replace(folder + "/", "")
        return ServerBusy(
            f"partition {partition} has a damaged file {name} ({reason}); the other "
            "partitions can be read: narrow the timestamp range to leave it out",
            retry_after=60,
        )

    def _replace(self, db: duckdb.DuckDBPyConnection) -> None:
        """Start a new database in place of `db` (unless done already); `db` closes when its
        running requests end."""
        with self._lock:
            if self._db is db:
                self._db = self._connect()
                self._served = 0

    def _again_on_change(
        self, cursor: duckdb.DuckDBPyConnection, query: EventQuery, work: _Work[_T]
    ) -> _T:
        """`work`, started over (listing the partitions again) when a file it read
        vanished because a job replaced it; the error is raised when an event file that
        failed is still listed (a damaged file) or after MAX_ATTEMPTS."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            listed = self.partitions()
            try:
                return work(cursor, query, listed)
            except (duckdb.IOException, FileNotFoundError) as exc:
                # A vanished index file (FileNotFoundError: a newer index replaced it) is
                # found anew on the next attempt; an event file only if the listing changed.
                if attempt == MAX_ATTEMPTS or (
                    isinstance(exc, duckdb.IOException) and self.partitions() == listed
                ):
                    raise
                log.info("lake files changed during a query (attempt %d); reading again", attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _list_events(
        self, cursor: duckdb.DuckDBPyConnection, query: EventQuery, listed: list[Partition]
    ) -> pa.Table:
        partitions = seek_prune(prune(listed, query.predicate), query)
        if not partitions:
            return self._empty(query.columns)
        served = self._page_from_index(cursor, partitions, query)
        if served is not None:
            return served
        plan = self._plan_scans(cursor, partitions, query.predicate)
        scans = plan.scans
        if query.order != "timestamp":
            every = [s for p in partitions for s in scans[p.day]]
            return self._page(cursor, every, query, query.first, query.limit)
        if not query.ascending:
            partitions = partitions[::-1]
        skip, need = query.first, query.limit
        pages: list[pa.Table] = []
        start, size = 0, 1
        while start < len(partitions) and need > 0:
            batch = partitions[start : start + size]
            start, size = start + len(batch), size * 2
            if plan.over_cap:  # too many candidates in the whole range: maybe not in this batch
                scans.update(self._plan_scans(cursor, batch, query.predicate).scans)
            batch_scans = [s for p in batch for s in scans[p.day]]
            if not batch_scans:
                continue  # indexed partitions without a candidate row
            if skip > 0:
                matches = self._count(cursor, batch_scans, query.predicate)
                if matches <= skip:
                    skip -= matches
                    continue
            page = self._page(cursor, batch_scans, query, skip, need, recent=not pages)
            skip = 0
            need -= page.num_rows
            pages.append(page)
        return self._joined(pages, query.columns)

    def _count_events(
        self, cursor: duckdb.DuckDBPyConnection, query: EventQuery, listed: list[Partition]
    ) -> int:
        partitions = seek_prune(prune(listed, query.predicate), query)
        if not partitions:
            return 0
        counted, unsummarised = 0, []
        summaries = (
            count_plan(query.predicate, query.connections)
            if self.use_summaries and query.seek is None  # a seek's bound is within a day
            else None
        )
        if summaries is not None:  # whole days from the count summaries, the rest scanned
            whole = [f for p in partitions if summaries.whole_day(p.day) for f in p.files]
            counted, unsummarised = count_from_summaries(cursor, whole, summaries)
            partitions = [p for p in partitions if not summaries.whole_day(p.day)]
        plan = self._plan_scans(cursor, partitions, query.predicate)
        scans = [(f, None) for f in unsummarised] + [
            s for p in partitions for s in plan.scans[p.day]
        ]
        return counted + (self._count(cursor, scans, query.predicate) if scans else 0)

    def _plan_scans(
        self,
        cursor: duckdb.DuckDBPyConnection,
        partitions: list[Partition],
        predicate: Predicate | None,
    ) -> ScanPlan:
        """What to read of each partition: its whole files, or, in partitions with a current
        serving index, the candidate rows of the filter's indexed conditions."""
        plan = ScanPlan({p.day: [(f, None) for f in p.files] for p in partitions})
        if self.indexes is None or predicate is None or not predicate.indexed_conditions:
            return plan
        indexed = [(p, self.indexes.current(p.name, p.files)) for p in partitions]
        usable = [(p, ix) for p, ix in indexed if ix is not None]
        if not usable:
            return plan
        candidates = self.indexes.lookup(
            cursor, [ix for _, ix in usable], predicate.indexed_conditions, self.candidate_cap
        )
        if candidates is None:
            plan.over_cap = True
            return plan
        rows = by_file(candidates)
        for p, _ in usable:
            plan.scans[p.day] = [(f, tuple(rows[f])) for f in p.files if f in rows]
        return plan

    def _page_from_index(
        self, cursor: duckdb.DuckDBPyConnection, partitions: list[Partition], query: EventQuery
    ) -> pa.Table | None:
        """The page read through the serving index (`eventpipe.serving.index_pages`) when every
        partition has a current index and the request has no filter and is ordered by
        timestamp, or its filter has indexed conditions, or it is a workspace's request by
        timestamp whose conditions are on connectionId and timestamp only (its newest rows
        are read from the row stores and the restriction applied, while they fill the page
        at a rate worth it: see benchmarks/README.md), or it is a keyset page (a seek: the
        rows from the seek on are read the same way, up to SEEK_ROWS_PER_EVENT per event
        asked for); else None."""
        predicate = query.predicate
        by_time = query.order == "timestamp"
        unfiltered = predicate is None and by_time
        newest = (
            query.connections is not None
            and by_time
            and predicate is not None
            and predicate.columns <= {"connectionId", "timestamp"}
        )
        seek = query.seek is not None and by_time
        if self.indexes is None or not (
            unfiltered or newest or seek or (predicate and predicate.indexed_conditions)
        ):
            return None
        budget = self.row_store_rows
        if seek:
            budget = max(budget, SEEK_ROWS_PER_EVENT * (query.first + query.limit))
        if query.seek is not None and by_time and not (predicate and predicate.indexed_conditions):
            reachable = self._reachable(self.indexes, partitions, query, query.seek, budget)
            if reachable is None:
                return None
            return page_from_index(self.indexes, cursor, reachable, query, budget)
        indexed = [self.indexes.current(p.name, p.files) for p in partitions]
        usable = [ix for ix in indexed if ix is not None]
        if len(usable) < len(indexed):
            return None
        if unfiltered:
            return page_by_position(self.indexes, cursor, usable, query)
        return page_from_index(self.indexes, cursor, usable, query, budget)

    @staticmethod
    def _reachable(
        indexes: IndexCatalog,
        partitions: list[Partition],
        query: EventQuery,
        seek: Seek,
        budget: int,
    ) -> list[IndexedPartition] | None:
        """The current indexes of the partitions (oldest first) whose rows a seek page
        without indexed conditions can read: from the seek on in its direction, until more
        than `budget` rows (page_from_index reads no further); None when one of them has
        no current index. The partitions beyond are not looked at."""
        ordered = partitions if query.ascending else partitions[::-1]
        found: list[IndexedPartition] = []
        rows = 0
        for partition in ordered:
            index = indexes.current(partition.name, partition.files)
            if index is None:
                return None
            found.append(index)
            low, high = seek_range(indexes.open(index).order.ts, seek, query.ascending)
            rows += high - low
            if rows > budget:
                break
        return found if query.ascending else found[::-1]

    def _where(self, predicate: Predicate | None) -> tuple[str, dict[str, object]]:
        """The predicate as one parenthesised condition ("" for none), and its parameters."""
        if predicate is None:
            return "", {}
        return f"({predicate.sql})", dict(predicate.params)

    def _source(
        self,
        scans: Sequence[FileScan],
        columns: str,
        condition: str,
        params: dict[str, object],
        predicate: Predicate | None,
    ) -> str:
        """SQL (a UNION ALL) of `columns` of the rows of `scans` meeting `condition` (SQL, or
        "" for all rows; it may use `predicate`'s json values); the file names are added to
        `params`."""
        whole = [f for f, rows in scans if rows is None]
        selects = []
        if whole:
            params["files"] = whole
            where = f" WHERE {condition}" if condition else ""
            relation = table_source(f"read_parquet($files, {_SCAN_OPTIONS})", predicate)
            selects.append(f"SELECT {columns} FROM {relation}{where}")
        for i, (filename, rows) in enumerate(s for s in scans if s[1] is not None):
            params[f"f{i}"] = filename
            listed = ", ".join(map(str, rows))  # row numbers from the index: no user text
            where = f" WHERE t.file_row_number IN ({listed})"
            where += f" AND {condition}" if condition else ""
            relation = table_source(f"read_parquet($f{i}, {_SCAN_OPTIONS})", predicate)
            selects.append(f"SELECT {columns} FROM {relation}{where}")
        return " UNION ALL ".join(selects)

    def _count(
        self,
        cursor: duckdb.DuckDBPyConnection,
        scans: Sequence[FileScan],
        predicate: Predicate | None,
    ) -> int:
        where, params = self._where(predicate)
        source = self._source(scans, "NULL", where, params, predicate)
        sql = f"SELECT count(*) FROM ({source})"
        return int(cursor.execute(sql, params).fetchall()[0][0])

    def _page(
        self,
        cursor: duckdb.DuckDBPyConnection,
        scans: Sequence[FileScan],
        query: EventQuery,
        offset: int,
        limit: int,
        recent: bool = False,
    ) -> pa.Table:
        """One page in two steps: locate the rows (file, row number), then read their columns.

        With `recent` (a filtered first page by timestamp), the page is first looked for
        among the batch's newest `recent_rows` rows: when they hold a full page, that is
        the page (every row they leave out sorts after them), and the rest is not read.
        """
        files = [f for f, _ in scans]
        cut = ""
        if query.order == "timestamp" and all(r is None for _, r in scans):
            if query.predicate is None:
                cut = self._timestamp_cut(cursor, files, query.ascending, offset + limit)
            elif recent and offset == 0:
                recent_cut = self._timestamp_cut(cursor, files, query.ascending, self.recent_rows)
                if recent_cut:
                    keys = self._locate(cursor, scans, query, (offset, limit), recent_cut)
                    if len(keys) == limit:
                        return self._fetch(cursor, keys, query)
        keys = self._locate(cursor, scans, query, (offset, limit), cut)
        if not keys:
            return self._empty(query.columns)
        return self._fetch(cursor, keys, query)

    def _locate(
        self,
        cursor: duckdb.DuckDBPyConnection,
        scans: Sequence[FileScan],
        query: EventQuery,
        page: tuple[int, int],
        cut: str,
    ) -> list[tuple[str, int]]:
        """The (file, row number) of the rows of `page` (offset, limit), in order; `cut` is ""
        or a condition on timestamp that the query adds to its filter."""
        offset, limit = page
        where, params = self._where(query.predicate)
        where = " AND ".join(c for c in (where, cut) if c)
        params.update(limit=limit, offset=offset)
        needed = ["filename", "file_row_number", query.order, "messageId"]
        if query.seek is not None:
            needed.append("connectionId")
        columns = ", ".join(f"t.{quote_identifier(c)}" for c in dict.fromkeys(needed))
        locate = (
            "SELECT filename, file_row_number FROM "
            f"({self._source(scans, columns, where, params, query.predicate)})"
            f" AS t ORDER BY {order_sql(query.order, query.ascending, query.seek is not None)}"
            " LIMIT $limit OFFSET $offset"
        )
        return [(str(f), int(r)) for f, r in cursor.execute(locate, params).fetchall()]

    def _timestamp_cut(
        self, cursor: duckdb.DuckDBPyConnection, files: Sequence[str], ascending: bool, limit: int
    ) -> str:
        """A condition keeping the first `limit` timestamps of `files` (ties included), or "".

        Sorting one int64 column is much cheaper than sorting it with messageId (every
        string read), and on timestamp-sorted files the clause skips row groups.
        """
        direction, op = ("ASC", "<=") if ascending else ("DESC", ">=")
        sql = (
            f"SELECT timestamp FROM read_parquet($files, {_SCAN_OPTIONS}) AS t"
            f" ORDER BY timestamp {direction} LIMIT 1 OFFSET $last"
        )
        found = cursor.execute(sql, {"files": list(files), "last": limit - 1}).fetchall()
        if not found:
            return ""
        cut = found[0][0].isoformat()  # microsecond-exact; a literal: nothing from the user
        return f"t.timestamp {op} TIMESTAMPTZ '{cut}'"

    def _fetch(
        self, cursor: duckdb.DuckDBPyConnection, keys: list[tuple[str, int]], query: EventQuery
    ) -> pa.Table:
        """The columns of the rows at `keys` (file, row number), in the order of `keys`.

        Each file is read only in the row groups that hold its rows (DuckDB prunes row
        groups by a literal list of row numbers); when its rows are far apart, the filter is
        applied again so that DuckDB skips the non-matching rows inside them too.
        """
        rows_by_file: dict[str, list[int]] = {}
        for filename, row in keys:
            rows_by_file.setdefault(filename, []).append(row)
        params: dict[str, object] = {}
        columns = ", ".join("t." + quote_identifier(c) for c in query.columns)
        selects = []
        for i, (filename, rows) in enumerate(rows_by_file.items()):
            low, high = min(rows), max(rows)
            params[f"f{i}"] = filename
            # Row numbers found by the locate query: integers, no user text.
            condition = f"file_row_number IN ({', '.join(map(str, rows))})"
            filtered = None
            if query.predicate is not None and high - low > self.dense_span:
                condition += f" AND ({query.predicate.sql})"
                params.update(query.predicate.params)
                filtered = query.predicate
            relation = table_source(f"read_parquet($f{i}, {_SCAN_OPTIONS})", filtered)
            selects.append(
                f"SELECT $f{i} AS _file, file_row_number AS _row, {columns}"
                f" FROM {relation} WHERE {condition}"
            )
        table = cursor.sql(" UNION ALL ".join(selects), params=params).to_arrow_table()
        position = {key: i for i, key in enumerate(keys)}
        found = zip(table["_file"].to_pylist(), table["_row"].to_pylist(), strict=True)
        order = sorted(range(table.num_rows), key=[position[k] for k in found].__getitem__)
        return table.take(order).select(list(query.columns))

    def _joined(self, pages: list[pa.Table], columns: Sequence[str]) -> pa.Table:
        """The pages of successive batches, one after the other."""
        pages = [p for p in pages if p.num_rows]
        if not pages:
            return self._empty(columns)
        return pa.concat_tables(pages) if len(pages) > 1 else pages[0]

    def _empty(self, columns: Sequence[str]) -> pa.Table:
        return empty_page(columns)
