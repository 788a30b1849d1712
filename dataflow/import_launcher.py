"""Dataflow Flex Template entry point of `eventpipe import` (FLEX_TEMPLATE_PYTHON_PY_FILE).

The template launcher calls this file with `--name=value` arguments: the template's
parameters (import-metadata.json; names use `_`) and Beam's pipeline options. The
parameters become `eventpipe import` flags (`inputs` -> the positional patterns,
comma-separated; `bq_table` -> `--bq-table`...); everything else goes to Beam unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METADATA = Path(__file__).with_name("import-metadata.json")
FLAGS_WITHOUT_VALUE = {"drop_bots", "no_enrich"}


def template_parameters() -> set[str]:
    """The parameter names the template declares."""
    return {p["name"] for p in json.loads(METADATA.read_text())["parameters"]}


def import_arguments(argv: list[str]) -> list[str]:
    """The `eventpipe import` command line for the launcher's arguments."""
    names = template_parameters()
    inputs: list[str] = []
    flags: list[str] = []
    beam: list[str] = []
    for arg in argv:
        name, _, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in names:
            beam.append(arg)
        elif name == "inputs":
            inputs += [v.strip() for v in value.split(",") if v.strip()]
        elif name in FLAGS_WITHOUT_VALUE:
            if value.lower() in ("", "true", "1", "yes"):
                flags.append("--" + name.replace("_", "-"))
        else:
            flags += ["--" + name.replace("_", "-"), value]
    return ["import", *inputs, *flags, *beam]


if __name__ == "__main__":
    from eventpipe.jobs.cli import main

    sys.exit(main(import_arguments(sys.argv[1:])))
