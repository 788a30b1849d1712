"""ArrowMemo: per-value results kept as Arrow columns, bounded, with hit counts."""

from __future__ import annotations

import pyarrow as pa

from eventpipe.transforms.enrich.memo import ArrowMemo


def test_lookup_spreads_results_to_rows_and_calls_once_per_value() -> None:
    calls: list[str] = []

    def fn(value: str) -> tuple[str, int] | None:
        calls.append(value)
        return None if value == "none" else (value.upper(), len(value))

    memo = ArrowMemo(fn, [pa.string(), pa.int64()])
    upper, length = memo.lookup(pa.array(["ab", None, "c", "ab", "none", "c"]))
    assert upper.to_pylist() == ["AB", None, "C", "AB", None, "C"]
    assert length.to_pylist() == [2, None, 1, 2, None, 1]
    assert sorted(calls) == ["ab", "c", "none"]
    assert (memo.hits, memo.misses) == (0, 3)

    upper, _ = memo.lookup(pa.array(["c", "d", "ab"]))
    assert upper.to_pylist() == ["C", "D", "AB"]
    assert sorted(calls) == ["ab", "c", "d", "none"]
    assert (memo.hits, memo.misses) == (2, 4)
    assert len(memo) == 4


def test_memo_is_bounded() -> None:
    memo = ArrowMemo(lambda value: (value + "!",), [pa.string()], max_size=3)
    memo.lookup(pa.array(["a", "b", "c"]))
    assert len(memo) == 3
    (result,) = memo.lookup(pa.array(["d", "a", "e"]))
    assert result.to_pylist() == ["d!", "a!", "e!"]
    assert len(memo) == 3  # restarted from this batch's keys


def test_empty_and_all_null_inputs() -> None:
    memo = ArrowMemo(lambda value: (value,), [pa.string()])
    assert memo.lookup(pa.array([], pa.string()))[0].to_pylist() == []
    assert memo.lookup(pa.nulls(3, pa.string()))[0].to_pylist() == [None, None, None]
    assert len(memo) == 0
