"""A bounded memo of a per-value function, kept as Arrow columns.

User agents and IPs repeat across batches. Keeping what was derived for them
as Arrow arrays (keys + one array per output field) makes a warm batch a
`pc.index_in` and a few `take`s, with no Python work per row or per distinct
value; only values never seen before go through the (cached) Python function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


class ArrowMemo:
    """fn(key) -> tuple of len(types) (or None), memoised for string keys.

    Bounded: when adding the new keys of a batch would exceed `max_size`,
    the memo restarts from the keys of that batch.
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
        self._keys = pa.array([], pa.string())
        self._columns = [pa.array([], type_) for type_ in self.types]

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, keys: pa.Array) -> list[pa.Array]:
        """One array per output field, aligned with `keys` (null key -> nulls)."""
        if keys.type != pa.string():
            keys = keys.cast(pa.string())
        indices = pc.index_in(keys, value_set=self._keys)
        unknown = pc.and_(indices.is_null(), keys.is_valid())
        missing = pc.unique(keys.filter(unknown))
        if len(missing):
            self._add(missing, keys)
            indices = pc.index_in(keys, value_set=self._keys)
        found = len(keys) - keys.null_count
        self.misses += len(missing)
        self.hits += found - len(missing)
        return [column.take(indices) for column in self._columns]

    def _add(self, missing: pa.Array, keys: pa.Array) -> None:
        if len(self._keys) + len(missing) > self.max_size:
            self._clear()
            missing = pc.unique(keys.filter(keys.is_valid()))
        values = missing.to_pylist()
        empty = (None,) * len(self.types)
        results = [self.fn(value) or empty for value in values]
        new_columns = zip(*results, strict=True)
        self._keys = pa.concat_arrays([self._keys, missing])
        self._columns = [
            pa.concat_arrays([old, pa.array(new, type=type_)])
            for old, new, type_ in zip(self._columns, new_columns, self.types, strict=True)
        ]
