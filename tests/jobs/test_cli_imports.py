"""The CLI imports only the job it runs: catalog commands and --help never load Beam."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from eventpipe.jobs.cli import COMMANDS, build_parser

PROBE = """
import contextlib, sys
from eventpipe.jobs.cli import main
code = None
with contextlib.suppress(SystemExit):
    code = main(sys.argv[1:])
print("exit", code, "beam", "apache_beam" in sys.modules)
"""


def run_cli(*argv: str) -> str:
    """Run the CLI in a fresh interpreter; its last output line (exit code, Beam loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["workspaces", "list", "--lake", "{lake}"],
        ["-v", "keys", "--help"],
        ["--help"],
        ["schema"],
    ],
)
def test_commands_without_pipelines_do_not_import_beam(tmp_path, argv):
    line = run_cli(*(a.format(lake=tmp_path / "lake") for a in argv))
    assert line.endswith("beam False"), line
    assert line.startswith(("exit 0", "exit None")), line


def test_pipeline_commands_still_get_their_flags():
    line = run_cli("import", "--help")
    assert line == "exit None beam True"  # argparse exits after the help: Beam was loaded


def test_every_summary_is_what_its_module_registers():
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    registered = {a.dest: a.help for a in subparsers._choices_actions}
    assert registered == {command: summary for command, (_, summary) in COMMANDS.items()}


def test_a_command_parses_its_own_flags_when_others_are_not_loaded():
    parser = build_parser(load="serve")
    args = parser.parse_args(["serve", "--lake", "L"])
    assert args.command == "serve" and args.lake == "L"
    with pytest.raises(SystemExit):
        parser.parse_args(["import", "--lake", "L", "x.jsonl"])  # import's flags are unknown
