"""The Dataflow Flex Template files: every declared parameter reaches `eventpipe import`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from eventpipe.jobs.cli import build_parser

LAUNCHER = Path(__file__).resolve().parents[2] / "dataflow" / "import_launcher.py"


def load_launcher():
    spec = importlib.util.spec_from_file_location("import_launcher", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_parameters_become_import_flags():
    launcher = load_launcher()
    argv = [
        "--inputs=gs://b/in/a-*.jsonl.gz, gs://b/in/b.json",
        "--sink=bigquery",
        "--bq_table=p.d.events",
        "--bq_failed_table=p.d.failed",
        "--lake=gs://b/lake",
        "--connection_id=7",
        "--geoip_db=gs://b/GeoLite2-City.mmdb",
        "--ip_policy=mask",
        "--drop_bots=true",
        "--no_enrich=false",
        "--runner=DataflowRunner",
        "--temp_location=gs://b/tmp",
    ]
    command = launcher.import_arguments(argv)
    assert command[:3] == ["import", "gs://b/in/a-*.jsonl.gz", "gs://b/in/b.json"]
    args, beam = build_parser().parse_known_args(command)
    assert (args.sink, args.bq_table, args.bq_failed_table) == (
        "bigquery",
        "p.d.events",
        "p.d.failed",
    )
    assert (args.lake, args.connection_id, args.ip_policy) == ("gs://b/lake", 7, "mask")
    assert args.geoip_db == "gs://b/GeoLite2-City.mmdb"
    assert args.drop_bots and not args.no_enrich
    assert beam == ["--runner=DataflowRunner", "--temp_location=gs://b/tmp"]


def test_every_parameter_is_an_import_flag():
    launcher = load_launcher()
    import_parser = build_parser()._subparsers._group_actions[0].choices["import"]
    flags = {option for action in import_parser._actions for option in action.option_strings}
    for name in launcher.template_parameters() - {"inputs"}:
        assert "--" + name.replace("_", "-") in flags, name
