"""Who an erasure removes, and how each place of the lake recognises their data.

`Subjects` is the one definition of a person's data (docs/erasure.md, "What is erased"):

- an event is theirs when its `userId` or `previousId` is one of the user ids, its
  `anonymousId` one of the anonymous ids, or its `kpid` one of the kpids;
- a raw archive row (`LAKE/raw`, the event as parsed) when its payload's top-level
  `userId`, `previousId` or `anonymousId` is (the same event, before normalisation);
- a failed row when its raw text carries one of the ids as a whole JSON string (any
  position, key or value; `"X"` with unescaped quotes, so `X` inside `"X-2"` or `"aX"`
  is no match), written in UTF-8 or with `\\u` escapes;
- a landed event (landing log) as an event, by its own fields.

With `connections`, only rows of those connection ids (a workspace's) are theirs; failed
rows without a connectionId then belong to nobody's workspace and are left.

Each place gets its predicate from here: DuckDB SQL for the lake's tables, a Python test
for a landing envelope, parameters for BigQuery (`io.bigquery.erase`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from eventpipe.core.duck import quote_str

USER = "user"
ANONYMOUS = "anonymous"
KPID = "kpid"


@dataclass(frozen=True)
class Subjects:
    """The ids whose data is erased, and the connections it is erased from (None: all)."""

    user_ids: frozenset[str] = frozenset()
    anonymous_ids: frozenset[str] = frozenset()
    kpids: frozenset[str] = frozenset()
    connections: frozenset[int] | None = None

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.anonymous_ids or self.kpids)

    def ids(self) -> list[str]:
        """Every id, sorted (for the failed rows' text match)."""
        return sorted(self.user_ids | self.anonymous_ids | self.kpids)

    def with_ids(self, user_ids: Iterable[str], anonymous_ids: Iterable[str]) -> Subjects:
        """These subjects plus more user and anonymous ids (a profile's)."""
        return Subjects(
            self.user_ids | frozenset(user_ids),
            self.anonymous_ids | frozenset(anonymous_ids),
            self.kpids,
            self.connections,
        )

    # --- DuckDB SQL over the lake's tables ------------------------------------------------

    def _connection_sql(self, column: str) -> str:
        if self.connections is None:
            return "TRUE"
        if not self.connections:
            return "FALSE"
        return f'"{column}" IN ({", ".join(str(int(c)) for c in sorted(self.connections))})'

    def event_conditions(self) -> list[str]:
        """One condition per id column (each prunes by that column's Bloom filters)."""
        conditions = [
            _in('"userId"', self.user_ids),
            _in('"previousId"', self.user_ids),
            _in('"anonymousId"', self.anonymous_ids),
            _in('"kpid"', self.kpids),
        ]
        where = self._connection_sql("connectionId")
        return [f"({c}) AND {where}" for c in conditions if c]

    def event_sql(self) -> str:
        """True for an event-table row of the subjects."""
        return _any(self.event_conditions())

    def archive_sql(self) -> str:
        """True for a raw archive row of the subjects (its payload's own id fields). A
        substring test first, so only candidate payloads are parsed."""
        ids = self.ids()
        if not ids:
            return "FALSE"
        candidates = " OR ".join(f"contains(payload, {quote_str(i)})" for i in ids)
        fields = [
            _in("json_extract_string(payload, '$.userId')", self.user_ids),
            _in("json_extract_string(payload, '$.previousId')", self.user_ids),
            _in("json_extract_string(payload, '$.anonymousId')", self.anonymous_ids),
        ]
        exact = " OR ".join(f for f in fields if f) or "FALSE"
        where = self._connection_sql("connection_id")
        return (
            f"(({candidates} OR contains(payload, '\\u')) AND coalesce({exact}, FALSE)) AND {where}"
        )

    def failed_sql(self) -> str:
        """True for a failed row whose raw text carries one of the ids as a JSON string."""
        pattern = self.text_pattern()
        if pattern is None:
            return "FALSE"
        return (
            f"regexp_matches(raw, {quote_str(pattern)}) AND {self._connection_sql('connectionId')}"
        )

    def text_pattern(self) -> str | None:
        """An RE2 pattern: one of the ids as a whole JSON string, quotes unescaped."""
        forms = sorted({form for i in self.ids() for form in json_forms(i)})
        if not forms:
            return None
        alternatives = "|".join(_re2_literal(f) for f in forms)
        return rf'(?:^|[^\\])(?:\\\\)*"(?:{alternatives})"'

    # --- landed events ----------------------------------------------------------------------

    def owns_event(self, event: Any) -> bool:
        """Whether a landed event (a JSON object) is the subjects'."""
        if not isinstance(event, dict):
            return False
        return (
            event.get("userId") in self.user_ids
            or event.get("previousId") in self.user_ids
            or event.get("anonymousId") in self.anonymous_ids
        )

    def mentioned_in(self, data: bytes) -> bool:
        """Whether `data` holds one of the ids as JSON would write it (a torn fragment)."""
        return any(form.encode() in data for i in self.ids() for form in json_forms(i))

    def may_own_line(self, line: bytes) -> bool:
        """A fast pre-test of a landing line: False means no event of it is theirs."""
        return b"\\" in line or self.mentioned_in(line)

    def erase_from_envelope(self, line: bytes) -> tuple[bytes, int]:
        """A landing envelope line without the subjects' events: (new line, events removed).
        A request left without events is removed whole (b"")."""
        if not self.may_own_line(line):
            return line, 0
        try:
            envelope = orjson.loads(line)
        except orjson.JSONDecodeError:  # the import fails it whole: its text is the match
            return (b"", 1) if self.mentioned_in(line) else (line, 0)
        if self.connections is not None and envelope.get("connectionId") not in self.connections:
            return line, 0
        body = envelope.get("body")
        if isinstance(body, dict) and isinstance(body.get("batch"), list):
            kept = [e for e in body["batch"] if not self.owns_event(e)]
            removed = len(body["batch"]) - len(kept)
            body = {**body, "batch": kept} if kept else None
        elif isinstance(body, list):
            kept = [e for e in body if not self.owns_event(e)]
            removed = len(body) - len(kept)
            body = kept or None
        else:
            removed = int(self.owns_event(body))
            body = None if removed else body
        if not removed:
            return line, 0
        if body is None:
            return b"", removed
        return orjson.dumps({**envelope, "body": body}) + b"\n", removed


def _in(column: str, values: frozenset[str]) -> str:
    if not values:
        return ""
    return f"{column} IN ({', '.join(quote_str(v) for v in sorted(values))})"


def _any(conditions: list[str]) -> str:
    return " OR ".join(f"({c})" for c in conditions) if conditions else "FALSE"


def _re2_literal(text: str) -> str:
    """`text` as an RE2 literal (both engines, DuckDB's and BigQuery's, are RE2)."""
    return "".join("\\" + c if c in string.punctuation else c for c in text)


def json_forms(value: str) -> set[str]:
    """The inside of `value`'s JSON string as a writer may spell it: UTF-8 or ASCII escapes."""
    return {json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}


def id_proof(key: bytes, kind: str, value: str) -> str:
    """A keyed hash of an erased id for the erasure's record: whoever holds the id and the
    lake's key can check that it was erased; the record alone does not reveal it."""
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
