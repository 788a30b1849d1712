"""Validate: event rows (JSON text) -> typed, valid events | failed(reason, field).

Every rule of seed 000: the JSON type and value of every known property
(generated from the schema, see `json_leaves`), the per-type required and
not-permitted properties (`event_rules`), anonymousId/userId, and timestamp
required with originalTimestamp. Unknown properties are ignored. The first
problem found is the one reported.

Vectorised: each event is parsed once by DuckDB (`json_extract` of every path),
IPs are checked once per distinct value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from eventpipe.schemas import EVENT_TYPES
from eventpipe.transforms import event_rules as R
from eventpipe.transforms import failures as F
from eventpipe.transforms import json_leaves as J
from eventpipe.transforms.duck import quote_ident as qi
from eventpipe.transforms.ip_addresses import ip_table
from eventpipe.transforms.parse import PARSED_SCHEMA

META_COLUMNS = tuple(f.name for f in PARSED_SCHEMA if f.name != "payload")


@dataclass(frozen=True)
class ValidateResult:
    valid: pa.Table  # META_COLUMNS, payload, one typed column per value leaf (named by its path)
    failed: pa.Table  # failures.FAILED_SCHEMA


def _rule_cases(leaves: dict[str, J.Leaf]) -> list[tuple[str, str, str | None, str]]:
    t = f"({leaves['type'].column})->>'$'"
    cases: list[tuple[str, str, str | None, str]] = []
    for name in R.NON_EMPTY:
        cases.append(
            (
                f"{leaves[name].column} = '\"\"'",
                F.INVALID_VALUE,
                name,
                f"property '{name}' cannot be empty",
            )
        )
    for name, types in R.PERMITTED_ONLY_FOR.items():
        for ty in (ty for ty in EVENT_TYPES if ty not in types):
            cases.append(
                (
                    f"{leaves[name].column} IS NOT NULL AND {t} = '{ty}'",
                    F.PROPERTY_NOT_PERMITTED,
                    name,
                    f"property '{name}' is not permitted for {R.article(ty)} {ty} event",
                )
            )
    for name, types in R.REQUIRED_FOR.items():
        for ty in types:
            cases.append(
                (
                    f"{leaves[name].column} IS NULL AND {t} = '{ty}'",
                    F.MISSING_PROPERTY,
                    name,
                    f"property '{name}' is required for {R.article(ty)} {ty} event",
                )
            )
    cases.append(
        (
            f"{leaves['anonymousId'].column} IS NULL AND {leaves['userId'].column} IS NULL",
            F.MISSING_PROPERTY,
            "anonymousId",
            "either 'anonymousId' or 'userId' is required",
        )
    )
    cases.append(
        (
            f"{leaves['originalTimestamp'].column} IS NOT NULL AND {leaves['timestamp'].column} IS NULL",
            F.MISSING_PROPERTY,
            "timestamp",
            "property 'timestamp' is required when 'originalTimestamp' is present",
        )
    )
    return cases


class EventValidator:
    """Checks chunks of parsed events against seed 000 (SQL built once)."""

    def __init__(self) -> None:
        self.leaves = J.event_leaves()
        by_path = {leaf.path: leaf for leaf in self.leaves}
        self.values = [leaf for leaf in self.leaves if not leaf.is_section]
        type_leaf = by_path["type"]
        cases: list[tuple[str, str, str | None, str]] = [
            ("NOT is_object", F.INVALID_EVENT, None, "the event must be a JSON object"),
            (
                f"{type_leaf.column} IS NULL",
                F.MISSING_PROPERTY,
                "type",
                "property 'type' is required",
            ),
        ]
        cases += J.presence_cases([type_leaf])
        cases += J.presence_cases(
            [leaf for leaf in self.leaves if leaf is not type_leaf], {"context.ip": "ip_ok"}
        )
        cases += _rule_cases(by_path)
        meta = ", ".join(qi(c) for c in META_COLUMNS)
        self._extract = f"""
            WITH o AS MATERIALIZED (SELECT *, json_type(payload) = 'OBJECT' AS is_object FROM events),
            x AS MATERIALIZED (
              SELECT *, CASE WHEN is_object THEN {J.extract_list("payload", self.leaves)} END AS v FROM o)
            SELECT {meta}, payload, is_object, {J.leaf_columns("v", self.leaves)} FROM x
        """
        ts = [leaf for leaf in self.values if leaf.field.kind == "datetime"]
        ts_cols = ", ".join(
            f"{J.timestamp_expr(leaf.column)} AS {J.ts_column(leaf)}" for leaf in ts
        )
        ip_col = by_path["context.ip"].column
        self._check = f"""
            SELECT *, {J.first_problem(cases)} AS problem
            FROM (SELECT l.*, {ts_cols}, ips.ok AS ip_ok
                  FROM leaves l LEFT JOIN ips
                  ON ips.ip = CASE WHEN left(l.{ip_col}, 1) = '"' THEN (l.{ip_col})->>'$' END)
        """
        typed = ", ".join(f"{J.typed_expr(leaf)} AS {leaf.column}" for leaf in self.values)
        self._valid = f"SELECT {meta}, payload, {typed} FROM checked WHERE problem IS NULL"
        rec_ts = J.ts_column(by_path["receivedAt"])
        self._failed = f"""
            SELECT coalesce(received_at,
                            CASE WHEN {J.timestamp_in_range(rec_ts)} THEN {rec_ts} END,
                            $run_start) AS "receivedAt",
                   problem.reason AS reason, problem.field AS field, problem.message AS message,
                   source, line, "index", connection_id AS "connectionId", payload AS raw,
                   $run_id AS "runId"
            FROM checked WHERE problem IS NOT NULL
        """
        self._ip_column = by_path["context.ip"].path

    def validate(
        self, con: duckdb.DuckDBPyConnection, events: pa.Table, run_id: str, run_start: datetime
    ) -> ValidateResult:
        """Validate one chunk of parsed events (PARSED_SCHEMA) in DuckDB session `con`."""
        con.register("events", events)
        leaves = con.sql(self._extract).to_arrow_table()
        con.unregister("events")
        ip_texts = leaves[self._ip_column].to_pylist()
        ips = ip_table(t[1:-1] if t and t.startswith('"') else None for t in ip_texts)
        con.register("leaves", leaves)
        con.register("ips", ips)
        checked = con.sql(self._check).to_arrow_table()
        con.unregister("leaves")
        con.unregister("ips")
        con.register("checked", checked)
        valid = con.sql(self._valid).to_arrow_table()
        failed = con.sql(self._failed, params={"run_id": run_id, "run_start": run_start})
        failed = failed.to_arrow_table().cast(F.FAILED_SCHEMA)
        con.unregister("checked")
        return ValidateResult(valid, failed)
