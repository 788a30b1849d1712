"""ChunkQuery: one prepared statement scans each chunk it is given, in place and in order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from eventpipe.core.duck import ChunkQuery, connect, in_input_order

SCHEMA = pa.schema([pa.field("n", pa.int64()), pa.field("text", pa.string())])


def test_one_prepared_query_reads_every_chunk_it_is_given():
    con = connect()
    query = ChunkQuery("numbers", SCHEMA, "SELECT n * 2 AS twice, upper(text) AS loud FROM numbers")
    query.prepare(con)
    first = pa.table({"n": [1, 2, 3], "text": ["a", "b", "c"]}, SCHEMA)
    second = pa.table({"n": [10], "text": ["z"]}, SCHEMA)
    assert query.run(con, first).to_pydict() == {"twice": [2, 4, 6], "loud": ["A", "B", "C"]}
    assert query.run(con, second).to_pydict() == {"twice": [20], "loud": ["Z"]}
    # Between runs the input is empty again (no chunk is kept alive by the session).
    assert query.run(con, SCHEMA.empty_table()).num_rows == 0
    assert con.execute("EXECUTE numbers_query").fetchall() == []


def test_a_chunk_of_another_arrow_layout_is_cast_to_the_input_schema():
    con = connect()
    query = ChunkQuery("numbers", SCHEMA, "SELECT sum(n) AS total FROM numbers")
    query.prepare(con)
    narrow = pa.table({"n": pa.array([1, 2], pa.int32()), "text": ["a", "b"]})
    assert query.run(con, narrow).to_pydict() == {"total": [3]}


def test_rows_out_of_input_order_are_an_error_not_a_silent_mix_up():
    chunk = pa.table({"line": [1, 2, 3], "index": [0, 0, 0]})
    in_input_order(chunk, chunk, ("line", "index"))
    with pytest.raises(RuntimeError, match="input order"):
        in_input_order(chunk.take([1, 0, 2]), chunk, ("line", "index"))
    with pytest.raises(RuntimeError, match="input order"):
        in_input_order(chunk.slice(1), chunk, ("line", "index"))


def test_run_checks_the_order_when_asked():
    con = connect()
    query = ChunkQuery("numbers", SCHEMA, "SELECT n, text FROM numbers ORDER BY n DESC")
    query.prepare(con)
    chunk = pa.table({"n": [1, 2, 3], "text": ["a", "b", "c"]}, SCHEMA)
    assert query.run(con, chunk)["n"].to_pylist() == [3, 2, 1]
    with pytest.raises(RuntimeError, match="input order"):
        query.run(con, chunk, in_order_of=("n",))
