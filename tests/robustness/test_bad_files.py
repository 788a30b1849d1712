"""Crafted bad inputs (issue #12): damaged gzip, wrong file types, huge records, bad UTF-8, BOMs.

Every input is made by the test. The reader must turn each into failed rows that say
what is wrong and where, keep what is good, and never stop the run.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pytest

from eventpipe.io import raw_files, raw_records
from eventpipe.io.raw_files import read_record_chunks
from eventpipe.jobs.cli import main

BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf5\x80\x80\x80"]


def event(i: int, **overrides: object) -> dict:
    e = {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": f"anon-{i}",
        "messageId": f"msg-{i}",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": {"n": i},
    }
    return {**e, **overrides}


def jsonl(events: list[dict]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def read(
    path: Path, chunk_bytes: int = raw_files.CHUNK_BYTES
) -> tuple[list[dict], list[raw_records.Rejected]]:
    """Records (line, raw) and rejections of one file."""
    records, rejected = [], []
    for item in read_record_chunks(str(path), chunk_bytes):
        if isinstance(item, pa.Table):
            records += item.select(["line", "raw"]).to_pylist()
        else:
            rejected.append(item)
    return records, rejected


def only(rejected: list[raw_records.Rejected]) -> tuple[str, int, str, str]:
    [r] = rejected
    [line], [message], [raw] = r.lines, r.messages, r.raws
    return r.reason, line, message, raw


# --- damaged and mislabelled gzip ------------------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [raw_files.CHUNK_BYTES, 4096])
def test_a_truncated_gzip_is_a_damaged_file_and_keeps_its_whole_lines(tmp_path, chunk_bytes):
    lines = jsonl([event(i) for i in range(2000)]).splitlines()
    data = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "half.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    records, rejected = read(path, chunk_bytes)
    reason, line, message, raw = only(rejected)
    assert reason == "invalid_file"
    assert f"ends at byte {len(data) // 2:,}" in message and "truncated" in message
    kept = [r["raw"].encode() for r in records]
    assert 0 < len(kept) < 2000
    assert kept == lines[: len(kept)]  # every kept line is whole and unchanged
    assert line == len(kept) + 1  # the line where reading stopped
    assert lines[len(kept)].startswith(raw.encode())  # what was read of it


@pytest.mark.parametrize("damage", ["zeros in the data", "wrong CRC-32"])
def test_a_corrupt_gzip_member_gives_no_text_and_the_members_before_it_are_kept(tmp_path, damage):
    """Corrupt deflate data can inflate to wrong text before zlib notices: none of the
    damaged member's text is used, whole members before it are."""
    first = jsonl([event(i) for i in range(100)])
    second = bytearray(gzip.compress(jsonl([event(i, pad=str(i) * 40) for i in range(100, 3100)])))
    if damage == "wrong CRC-32":
        second[-8] ^= 0xFF
    else:
        second[len(second) // 2 : len(second) // 2 + 64] = bytes(64)
    (tmp_path / "f.jsonl.gz").write_bytes(gzip.compress(first) + second)
    records, rejected = read(tmp_path / "f.jsonl.gz")
    reason, line, message, raw = only(rejected)
    assert reason == "invalid_file"
    assert message.startswith("corrupt gzip data") and "of the compressed file" in message
    assert [r["raw"].encode() for r in records] == first.splitlines()
    assert (line, raw) == (101, "")


def test_a_truncated_gzip_json_document_is_a_damaged_file(tmp_path):
    data = gzip.compress(orjson.dumps([event(i) for i in range(500)]))
    (tmp_path / "d.json.gz").write_bytes(data[: len(data) // 2])
    records, rejected = read(tmp_path / "d.json.gz")
    reason, line, message, raw = only(rejected)
    assert (records, reason, line) == ([], "invalid_file", 1)
    assert "truncated gzip file" in message and "is not imported" in message
    assert raw.startswith('[{"type":"track"')


def test_a_plain_file_named_gz_is_rejected_and_the_others_are_read(tmp_path):
    (tmp_path / "plain.jsonl.gz").write_bytes(jsonl([event(1)]))
    records, rejected = read(tmp_path / "plain.jsonl.gz")
    assert records == []
    reason, line, message, _ = only(rejected)
    assert (reason, line) == ("invalid_file", 1)
    assert message.startswith("not a gzip file")


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("two members", gzip.compress(jsonl([event(1)])) + gzip.compress(jsonl([event(2)]))),
        ("zero padding", gzip.compress(jsonl([event(1), event(2)])) + bytes(512)),
        ("empty file", b""),
        ("empty member", gzip.compress(b"")),
    ],
)
def test_valid_gzip_files_are_not_damaged(tmp_path, case, data):
    path = tmp_path / "ok.jsonl.gz"
    path.write_bytes(data)
    records, rejected = read(path)
    assert rejected == []
    assert [json.loads(r["raw"]) for r in records] == json.loads(
        "[" + b",".join(gzip.decompress(data).splitlines()).decode() + "]"
    )


def test_a_gzip_bomb_is_read_in_bounded_blocks(tmp_path):
    """A small file that inflates to far more than a block never sits whole in memory."""
    from eventpipe.io.gzip_blocks import read_blocks

    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b" " * (64 << 20)))  # 64 KB
    sizes = [len(b) for b in read_blocks(lambda: path.open("rb"), 1 << 20, gzip=True)]
    assert sum(sizes) == 64 << 20
    assert max(sizes) < 2 << 20


def test_an_unreadable_file_is_a_failed_row(tmp_path):
    records, rejected = read(tmp_path / "gone.jsonl")
    reason, line, message, _ = only(rejected)
    assert (reason, line, records) == ("invalid_file", 1, [])
    assert "No such file" in message and "nothing of it is read" in message


# --- records over the size limit --------------------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 256])
def test_a_line_over_the_limit_is_too_large_and_its_neighbours_are_kept(
    tmp_path, monkeypatch, chunk_bytes
):
    monkeypatch.setattr(raw_records, "MAX_RECORD_BYTES", 2000)
    monkeypatch.setattr(raw_records, "RAW_PREFIX_BYTES", 100)
    big = orjson.dumps(event(2, properties={"s": "y" * 5000}))
    (tmp_path / "f.jsonl").write_bytes(jsonl([event(1)]) + big + b"\n" + jsonl([event(3)]))
    records, rejected = read(tmp_path / "f.jsonl", chunk_bytes)
    assert [r["line"] for r in records] == [1, 3]
    reason, line, message, raw = only(rejected)
    assert (reason, line) == ("too_large", 2)
    assert f"is {len(big):,} bytes, over the limit of 2,000 bytes" in message
    assert raw.encode() == big[:100]


def test_a_last_line_over_the_limit_without_newline(tmp_path, monkeypatch):
    monkeypatch.setattr(raw_records, "MAX_RECORD_BYTES", 2000)
    big = orjson.dumps(event(2, properties={"s": "y" * 5000}))
    (tmp_path / "f.jsonl").write_bytes(jsonl([event(1)]) + big)
    records, rejected = read(tmp_path / "f.jsonl", 512)
    assert [r["line"] for r in records] == [1]
    assert only(rejected)[:2] == ("too_large", 2)


def test_big_records_are_parsed_in_chunks_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(raw_records, "SOLO_BYTES", 1000)
    big = [event(i, properties={"s": "y" * 2000}) for i in (2, 4)]
    (tmp_path / "f.jsonl").write_bytes(jsonl([event(1), big[0], event(3), big[1], event(5)]))
    chunks = list(read_record_chunks(str(tmp_path / "f.jsonl")))
    assert sorted(c["line"].to_pylist() for c in chunks) == [[1, 3, 5], [2], [4]]


def test_a_json_document_over_the_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(raw_records, "MAX_RECORD_BYTES", 3000)
    monkeypatch.setattr(raw_records, "MAX_DOCUMENT_BYTES", 50_000)
    array = [event(i) for i in range(40)]
    array[17] = event(17, properties={"s": "y" * 4000})
    (tmp_path / "array.json").write_bytes(orjson.dumps(array))
    records, rejected = read(tmp_path / "array.json", chunk_bytes=1024)
    [r] = rejected
    assert (r.reason, r.lines, r.indexes) == ("too_large", [1], [17])
    assert "event at position 17" in r.messages[0]
    kept = [e for rec in records for e in json.loads(rec["raw"])]
    assert kept == array[:17] + array[18:]
    (tmp_path / "object.json").write_bytes(orjson.dumps(event(1, properties={"s": "y" * 4000})))
    assert only(read(tmp_path / "object.json")[1])[0] == "too_large"
    (tmp_path / "huge.json").write_bytes(orjson.dumps([event(i) for i in range(1000)]))
    reason, _, message, _ = only(read(tmp_path / "huge.json")[1])
    assert reason == "too_large" and "over the limit of 50,000 bytes" in message


# --- invalid UTF-8 and byte order marks -----------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [raw_files.CHUNK_BYTES, 300])
def test_lines_that_are_not_utf8_are_rejected_not_repaired(tmp_path, chunk_bytes):
    good = [orjson.dumps(event(i, event="Order é")) for i in range(len(BAD_UTF8) + 1)]
    bad = [
        orjson.dumps(event(i)).replace(b'"Order ', b'"Order ' + junk)
        for i, junk in enumerate(BAD_UTF8)
    ]
    lines = [x for pair in zip(good, bad, strict=False) for x in pair] + [good[-1]]
    (tmp_path / "f.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    records, rejected = read(tmp_path / "f.jsonl", chunk_bytes)
    assert [r["raw"].encode() for r in records] == good  # the valid lines, unchanged
    failed = [
        (line, reason, message, raw)
        for r in rejected
        for line, message, raw in zip(r.lines, r.messages, r.raws, strict=True)
        for reason in [r.reason]
    ]
    assert [f[0] for f in failed] == [2, 4, 6, 8, 10, 12]
    for (_, reason, message, raw), junk, line in zip(failed, BAD_UTF8, bad, strict=True):
        assert reason == "invalid_json"
        assert message.startswith("the record is not valid UTF-8")
        assert f"byte 0x{junk[0]:02x} at byte {line.index(junk)} of the record" in message
        assert "\ufffd" not in raw
        assert raw.encode().decode("unicode_escape").encode("latin-1") == line


def test_a_json_document_that_is_not_utf8(tmp_path):
    data = b'{"type": "track",\n "event": "\xff"}'
    (tmp_path / "d.json").write_bytes(data)
    reason, line, message, raw = only(read(tmp_path / "d.json")[1])
    assert (reason, line) == ("invalid_json", 1)
    at = data.index(b"\xff")
    assert "not valid UTF-8" in message and f"at byte {at} of the record" in message
    assert raw == '{"type": "track",\n "event": "\\xff"}'


@pytest.mark.parametrize("name", ["b.jsonl", "b.jsonl.gz", "b.json"])
def test_a_byte_order_mark_is_skipped(tmp_path, name):
    data = b"\xef\xbb\xbf" + jsonl([event(1), event(2)])
    if name == "b.json":
        data = b"\xef\xbb\xbf" + orjson.dumps(event(1))
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    records, rejected = read(tmp_path / name)
    assert rejected == []
    assert json.loads(records[0]["raw"])["messageId"] == "msg-1"
    assert records[0]["line"] == 1


# --- the whole job ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> tuple[Path, int]:
    """Every crafted input of the issue next to good files; and how many events are good."""
    folder = tmp_path_factory.mktemp("bad")
    good = [event(i) for i in range(100)]
    (folder / "good.jsonl").write_bytes(jsonl(good[:50]))
    (folder / "good.json").write_bytes(orjson.dumps(good[50:60]))
    data = gzip.compress(jsonl([event(1000 + i) for i in range(2000)]))
    (folder / "truncated.jsonl.gz").write_bytes(data[: len(data) // 2])
    (folder / "plain.jsonl.gz").write_bytes(jsonl([event(3000)]))
    batch = {"batch": [event(4000 + i, pad="p" * 900) for i in range(30_000)]}  # 31 MB
    (folder / "big-batch.jsonl").write_bytes(orjson.dumps(batch) + b"\n" + jsonl(good[60:70]))
    huge = event(5000, properties={"s": "y" * 50_000_000})
    (folder / "big-string.jsonl").write_bytes(jsonl([good[70], huge, good[71]]))
    near = {"batch": [event(7000 + i, pad="p" * 900) for i in range(7000)]}  # 7.3 MB: kept
    tiny = {
        "receivedAt": "2026-11-20T10:00:00Z",
        "body": {"batch": [event(8000, properties={"a": [0] * 3_900_000})]},
    }
    (folder / "near-limit.jsonl").write_bytes(jsonl([near, tiny]))  # tiny: 7.8 MB, 3.9M values
    bad = [orjson.dumps(event(6000 + i)).replace(b"Order", junk) for i, junk in enumerate(BAD_UTF8)]
    (folder / "utf8.jsonl").write_bytes(b"\n".join(bad) + b"\n" + jsonl(good[72:80]))
    (folder / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + jsonl(good[80:100]))
    return folder, 50 + 10 + 10 + 2 + 8 + 20


def test_the_import_survives_every_bad_input_and_reconciles(bad_inputs, tmp_path, capsys):
    folder, good = bad_inputs
    lake = tmp_path / "lake"
    code = main(["import", str(folder / "*"), "--lake", str(lake), "--connection-id", "1"])
    out = capsys.readouterr().out
    assert code == 3  # everything accounted for, but files were damaged
    assert "INCOMPLETE: damaged or unreadable files: 2" in out
    [summary] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    assert summary["reconciles"] and summary["damaged_files"] == 2
    failed = duckdb.sql(
        f"SELECT source, reason, line, message FROM read_parquet('{lake}/failed/*/*.parquet')"
    ).fetchall()
    by_file: dict[str, list[str]] = {}
    for source, reason, _, _ in failed:
        by_file.setdefault(Path(source).name, []).append(reason)
    assert {k: sorted(v) for k, v in by_file.items()} == {
        "truncated.jsonl.gz": ["invalid_file"],
        "plain.jsonl.gz": ["invalid_file"],
        "big-batch.jsonl": ["too_large"],
        "big-string.jsonl": ["too_large"],
        "utf8.jsonl": ["invalid_json"] * 6,
        "near-limit.jsonl": ["too_large"],  # parsing its 3.9M values needs more than 512 MB
    }
    written = summary["written"]
    kept_of_truncated = written - good - 7000  # (the batch near the limit is imported whole)
    assert 0 < kept_of_truncated < 2000
    assert summary["read"] == written + len(failed)
    ids = duckdb.sql(f"SELECT messageId FROM read_parquet('{lake}/events/*/*.parquet')").fetchall()
    assert {f"msg-{i}" for i in range(100)} <= {i for (i,) in ids}  # every good event


def test_a_damaged_file_imported_again_is_reported_again(tmp_path, capsys):
    """Its invalid_file row is stored once (the re-run's copy is a duplicate), but each run
    that reads the file says it is damaged and exits 3."""
    data = gzip.compress(jsonl([event(i) for i in range(400)]))
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    args = ["import", str(tmp_path / "cut.jsonl.gz"), "--lake", str(tmp_path / "lake")]
    for _ in range(2):
        assert main([*args, "--connection-id", "1"]) == 3
        assert "INCOMPLETE: damaged or unreadable files: 1" in capsys.readouterr().out
    failed = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/lake/failed/*/*.parquet')")
    assert failed.fetchall() == [(1,)]
