"""A bounded memo of a per-value function, kept as Arrow columns.

User agents and IPs repeat across batches. Keeping what was derived for them
as Arrow arrays (one per output field, plus a key -> position index) makes a
warm batch a dictionary encoding, one dict lookup per DISTINCT value and a
few `take`s, with no Python work per row; only values never seen before go
through the (cached) Python function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


class ArrowMemo:
    """fn(key) -> tuple of len(types) (or None), memoised for string keys.

    Bounded: when adding the new keys of a batch would exceed `max_size`,
    the memo restarts from the keys of that batch. `hits` and `misses` count
    distinct values per lookup.
    """

    def __init__(
        self,
        fn: Callable[[str], Sequence[Any] | None],
        types: Sequence[pa.DataType],
        max_size: int = 65_536,
    ) -> None:
        self.fn = fn
        self.types = list(types)
        self.max_size = max_size
        self.hits = 0
        self.misses = 0
        self._clear()

    def _clear(self) -> None:
        self._index: dict[str, int] = {}
        self._columns = [pa.array([], type_) for type_ in self.types]

    def __len__(self) -> int:
        return len(self._index)

    def lookup(self, keys: pa.Array) -> list[pa.Array]:
        """One array per output field, aligned with `keys` (null key -> nulls)."""
        encoded = pc.dictionary_encode(keys)
        distinct = encoded.dictionary.to_pylist()
        index = self._index
        new = [value for value in distinct if value not in index]
        if new:
            if len(index) + len(new) > self.max_size:
                self._clear()
                new = distinct
            self._add(new)
        self.misses += len(new)
        self.hits += len(distinct) - len(new)
        positions = pa.array([self._index[value] for value in distinct], pa.int64())
        rows = positions.take(encoded.indices)
        return [column.take(rows) for column in self._columns]

    def _add(self, values: list[str]) -> None:
        empty = (None,) * len(self.types)
        results = [self.fn(value) or empty for value in values]
        start = len(self._index)
        self._index.update((value, start + i) for i, value in enumerate(values))
        self._columns = [
            pa.concat_arrays([old, pa.array(new, type=type_)])
            for old, new, type_ in zip(
                self._columns, zip(*results, strict=True), self.types, strict=True
            )
        ]
