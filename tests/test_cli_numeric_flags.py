"""Every job's numeric flags refuse 0, negative and non-finite values where they mean
nothing, at parse time (exit 2, argparse names the flag), and accept sensible ones."""

from __future__ import annotations

import argparse

import pytest

from eventpipe.jobs.cli import build_parser, main

STREAM = ["stream", "--subscription", "projects/p/subscriptions/s", "--lake", "/nonexistent"]
IMPORT = ["import", "/nonexistent/*", "--lake", "/nonexistent"]
REPROCESS = ["reprocess", "--lake", "/x", "--from", "2025-10-01", "--to", "2025-10-02"]
SERVE = ["serve", "--lake", "/nonexistent"]
GENERATE = ["generate", "--out", "/nonexistent"]
ERASE = ["erase", "--lake", "/nonexistent", "--user-id", "x"]

# (command and its required flags, flag, refused values, an accepted value)
FLAGS = [
    (STREAM, "--max-messages", ["0", "-1", "1.5", "x"], "1"),
    (STREAM, "--window-seconds", ["0", "-60"], "60"),
    (STREAM, "--shards", ["0", "-4"], "1"),
    (STREAM, "--stop-after-idle", ["0", "-3", "nan", "inf"], "0.5"),
    (STREAM, "--dedupe-seconds", ["0", "-1", "nan"], "600"),
    (STREAM, "--kpid-refresh-seconds", ["0", "-1", "inf"], "300"),
    (STREAM, "--allowed-lateness", ["-1", "nan", "inf"], "0"),
    (STREAM, "--bq-rows-per-load", ["0", "-10"], "10"),
    (IMPORT, "--chunk-mb", ["0", "-1", "nan", "inf"], "0.5"),
    (IMPORT, "--bq-rows-per-load", ["0", "-10"], "10"),
    (IMPORT, "--wait", ["-1", "nan", "inf"], "0"),
    (REPROCESS, "--bq-rows-per-load", ["0"], "10"),
    (REPROCESS, "--wait", ["-0.5"], "2.5"),
    (SERVE, "--max-queries", ["0", "-1"], "1"),
    (SERVE, "--statement-timeout", ["0", "-1", "inf"], "0.5"),
    (SERVE, "--port", ["-1", "65536"], "0"),
    (SERVE, "--landing-segment-seconds", ["0", "-1", "nan", "inf"], "60"),
    (SERVE, "--landing-segment-bytes", ["0", "-1"], "1000000"),
    (SERVE, "--max-body-bytes", ["0", "-1"], "4000000"),
    (SERVE, "--max-events", ["0", "-1"], "2000"),
    (SERVE, "--max-depth", ["0", "-1"], "64"),
    (SERVE, "--max-pending-bytes", ["0", "-1"], "64000000"),
    (SERVE, "--workers", ["0", "-1"], "1"),
    (SERVE, "--listener-idle-seconds", ["0", "-1", "nan", "inf"], "600"),
    (GENERATE, "--days", ["0", "-1"], "1"),
    (GENERATE, "--workers", ["0"], "1"),
    (GENERATE, "--events-per-file", ["0", "-5"], "100"),
    (["compact", "--lake", "/nonexistent"], "--wait", ["-1"], "1"),
    (["identity", "--lake", "/nonexistent"], "--wait", ["-1"], "1"),
    (ERASE, "--wait", ["-1", "nan"], "1"),
    (ERASE, "--landing-wait", ["-1", "nan", "inf"], "0"),
    (ERASE, "--bq-rows-per-load", ["0"], "10"),
]


# Numeric flags where any integer means something: ids and a random seed.
ANY_INTEGER = {("stream", "--connection-id"), ("import", "--connection-id"),
               ("reprocess", "--connection-id"), ("generate", "--seed"),
               ("keys", "--connection"), ("keys", "key_id"), ("connections", "--id")}  # fmt: skip


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Every job's parser by command name."""
    root = build_parser()
    [commands] = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def _known(command: list[str], flag: str) -> bool:
    sub = _commands()[command[0]]
    return any(flag in action.option_strings for action in sub._actions)


def _numeric_flags(parser: argparse.ArgumentParser, command: str) -> set[tuple[str, str]]:
    flags = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _numeric_flags(sub, command)
        elif action.type in (int, float) or getattr(action.type, "__module__", "").endswith(
            "flag_types"
        ):
            flags.add((command, (action.option_strings or [action.dest])[0]))
    return flags


def test_every_numeric_flag_of_every_job_is_checked_here() -> None:
    root = build_parser()
    [commands] = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    numeric = set()
    for name, parser in commands.choices.items():
        numeric |= _numeric_flags(parser, name)
    covered = {(c[0], f) for c, f, _, _ in FLAGS} | {("generate", "--events")}
    assert numeric - ANY_INTEGER <= covered, sorted(numeric - ANY_INTEGER - covered)
    plain = {(c, f) for c, f in numeric if (c, f) not in ANY_INTEGER}
    assert all(f.startswith("--") for _, f in plain)


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [(c, f, v) for c, f, bad, _ in FLAGS for v in bad],
    ids=[f"{c[0]} {f} {v}" for c, f, bad, _ in FLAGS for v in bad],
)
def test_a_meaningless_value_is_refused_at_parse_time(
    command: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if command is GENERATE:
        command = [*command, "--events", "10"]
    assert _known(command, flag), f"{command[0]} has no {flag}"
    with pytest.raises(SystemExit) as exit_info:
        main([*command, f"{flag}={value}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: " in error, error


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [(c, f, good) for c, f, _, good in FLAGS],
    ids=[f"{c[0]} {f} {good}" for c, f, _, good in FLAGS],
)
def test_a_sensible_value_is_accepted(command: list[str], flag: str, value: str) -> None:
    if command is GENERATE:
        command = [*command, "--events", "10"]
    args, _ = build_parser().parse_known_args([*command, f"{flag}={value}"])
    dest = flag.removeprefix("--").replace("-", "_")
    assert float(getattr(args, dest)) == float(value)


def test_generate_refuses_zero_events(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*GENERATE, "--events", "0"])
    assert exit_info.value.code == 2
    assert "argument --events: must be at least 1, got '0'" in capsys.readouterr().err
