"""`eventpipe workspaces|connections|keys` on a real catalog file: outputs, JSON, errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from eventpipe.catalog import CATALOG_FILE, Catalog
from eventpipe.jobs.cli import main


class Cli:
    """Runs `eventpipe ARGS --lake LAKE` in-process and keeps what it printed."""

    def __init__(self, lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.lake, self.capsys = lake, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--lake", str(self.lake)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> dict:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        assert len(out.splitlines()) == 1
        return json.loads(out)


def catalog_content(lake: Path) -> list[str]:
    """The catalog's tables and rows as SQL."""
    with closing(sqlite3.connect(lake / CATALOG_FILE)) as db:
        return list(db.iterdump())


@pytest.fixture
def cli(tmp_path, capsys) -> Cli:
    return Cli(tmp_path / "lake", capsys)


def test_creates_print_one_json_object_each_that_scripts_can_use(cli):
    workspace = cli.json("workspaces", "create", "--name", "Acme Shop")
    assert workspace.keys() >= {"id", "name", "slug", "projectKey"}
    assert (workspace["name"], workspace["slug"]) == ("Acme Shop", "acme-shop")
    connection = cli.json("connections", "create", "--workspace", "acme-shop", "--name", "web")
    assert connection.keys() >= {"id", "workspace"}
    assert connection["workspace"] == workspace["id"]
    write = cli.json(
        "keys", "create", "--workspace", str(workspace["id"]), "--connection", str(connection["id"])
    )
    api = cli.json(
        "keys", "create", "--workspace", "acme-shop", "--scope", "read", "--scope", "admin"
    )
    for key in (write, api):
        assert key.keys() >= {"id", "key", "scope", "workspace", "connection"}
        assert key["workspace"] == workspace["id"]
    assert (write["scope"], write["connection"]) == (["ingest"], connection["id"])
    assert (api["scope"], api["connection"]) == (["read", "admin"], None)
    catalog = Catalog.in_lake(cli.lake)
    assert catalog.authenticate(write["key"]).connection == connection["id"]
    assert catalog.authenticate(api["key"]).scopes == {"read", "admin"}


def test_lists_show_the_objects_and_never_a_secret(cli):
    workspace = cli.json("workspaces", "create", "--name", "Acme")
    connection = cli.json("connections", "create", "--workspace", "acme")
    secret = cli.json(
        "keys", "create", "--workspace", "acme", "--connection", str(connection["id"])
    )["key"]
    for as_json in ([], ["--json"]):
        code, out, _ = cli("workspaces", "list", *as_json)
        assert code == 0 and workspace["projectKey"] in out
        code, out, _ = cli("connections", "list", "--workspace", "acme", *as_json)
        assert code == 0 and str(connection["id"]) in out
        code, out, _ = cli("keys", "list", "--workspace", "acme", *as_json)
        assert code == 0 and secret[:12] in out and secret not in out
    listed = [
        json.loads(line)
        for line in cli("keys", "list", "--workspace", "acme", "--json")[1].splitlines()
    ]
    assert [k["revoked"] for k in listed] == [None]


def test_the_text_output_of_a_key_shows_its_secret_once_and_says_so(cli):
    cli.json("workspaces", "create", "--name", "Acme")
    code, out, err = cli("keys", "create", "--workspace", "acme", "--scope", "read")
    secret = out.splitlines()[1].split()[-1]
    assert code == 0 and secret.startswith("epk_")
    assert "shown only now" in err
    assert Catalog.in_lake(cli.lake).authenticate(secret) is not None


def test_a_revoked_key_no_longer_authenticates(cli):
    cli.json("workspaces", "create", "--name", "Acme")
    key = cli.json("keys", "create", "--workspace", "acme", "--scope", "write")
    revoked = cli.json("keys", "revoke", str(key["id"]))
    assert revoked["id"] == key["id"] and revoked["revoked"]
    assert Catalog.in_lake(cli.lake).authenticate(key["key"]) is None


def test_one_workspace_lists_none_of_the_others_objects(cli):
    made = {}
    for name in ("Acme", "Other"):
        workspace = cli.json("workspaces", "create", "--name", name)
        connection = cli.json("connections", "create", "--workspace", workspace["slug"])
        key = cli.json("keys", "create", "--workspace", workspace["slug"], "--scope", "read")
        made[workspace["slug"]] = (connection, key)
    for mine, theirs in (("acme", "other"), ("other", "acme")):
        connections = cli("connections", "list", "--workspace", mine, "--json")[1]
        keys = cli("keys", "list", "--workspace", mine, "--json")[1]
        assert str(made[mine][0]["id"]) in connections
        assert str(made[theirs][0]["id"]) not in connections
        assert [json.loads(line)["id"] for line in keys.splitlines()] == [made[mine][1]["id"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["connections", "create", "--workspace", "nope"], "no workspace with slug 'nope'"),
        (["connections", "list", "--workspace", "7"], "no workspace with id 7"),
        (["keys", "list", "--workspace", "nope"], "no workspace"),
        (["keys", "create", "--workspace", "acme", "--connection", "THEIRS"], "has no connection"),
        (["keys", "create", "--workspace", "acme", "--connection", "5"], "has no connection 5"),
        (["keys", "revoke", "999"], "no key 999"),
        (["keys", "revoke", "1", "--workspace", "acme"], "no key 1 in workspace 'acme'"),
        (["workspaces", "create", "--name", "Acme"], "slug 'acme' exists already"),
        (["workspaces", "create", "--name", "X", "--slug", "other"], "exists already"),
        (["workspaces", "create", "--name", "X", "--slug", "1"], "not valid"),
    ],
)
def test_refusals_exit_2_with_a_message_and_change_nothing(cli, args, message):
    cli.json("workspaces", "create", "--name", "Acme")
    cli.json("workspaces", "create", "--name", "Other")
    theirs = cli.json("connections", "create", "--workspace", "other")
    cli.json("keys", "create", "--workspace", "other", "--scope", "read")
    before = catalog_content(cli.lake)
    args = [str(theirs["id"]) if a == "THEIRS" else a for a in args]
    code, out, err = cli(*args)
    assert (code, out) == (2, "")
    assert message in err and err.startswith(f"eventpipe {args[0]}: error:")
    assert catalog_content(cli.lake) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--workspace", "acme"], "one of the arguments --connection --scope"),
        (["keys", "create", "--workspace", "acme", "--scope", "root"], "argument --scope"),
        (
            ["keys", "create", "--workspace", "acme", "--scope", "read", "--connection", "1"],
            "not allowed with argument",
        ),
        (["connections", "create"], "--workspace"),
    ],
)
def test_bad_arguments_are_usage_errors(cli, capsys, args, message):
    with pytest.raises(SystemExit) as exited:
        main([*args, "--lake", str(cli.lake)])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not cli.lake.exists()


@pytest.mark.parametrize(
    ("args", "explains"),
    [
        (["workspaces", "--help"], "_catalog.sqlite"),
        (["connections", "--help"], "connectionId"),
        (["keys", "create", "--help"], "--scope"),
        (["keys", "--help"], "SHA-256"),
    ],
)
def test_help_explains_the_commands(capsys, args, explains):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 0
    assert explains in " ".join(capsys.readouterr().out.split())


def test_a_script_reads_the_console_commands_json_from_stdout(tmp_path):
    eventpipe = Path(sys.executable).with_name("eventpipe")
    lake = str(tmp_path / "lake")

    def run(*args: str) -> dict:
        done = subprocess.run(
            [eventpipe, *args, "--lake", lake, "--json"], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout)

    workspace = run("workspaces", "create", "--name", "Acme")
    connection = run("connections", "create", "--workspace", str(workspace["id"]))
    key = run(
        "keys", "create", "--workspace", workspace["slug"], "--connection", str(connection["id"])
    )
    principal = Catalog.in_lake(lake).authenticate(key["key"])
    assert (principal.workspace, principal.connection) == (workspace["id"], connection["id"])


def test_a_connection_id_the_events_already_carry_can_be_given_once(cli):
    cli.json("workspaces", "create", "--name", "Acme")
    cli.json("workspaces", "create", "--name", "Other")
    adopted = cli.json("connections", "create", "--workspace", "acme", "--id", "1371036433")
    assert adopted["id"] == 1371036433
    before = catalog_content(cli.lake)
    for workspace, bad, message in [
        ("other", "1371036433", "exists already"),
        ("acme", "1371036433", "exists already"),
        ("acme", "0", "int32 from 1"),
        ("acme", str(2**31), "int32 from 1"),
    ]:
        code, _, err = cli("connections", "create", "--workspace", workspace, "--id", bad)
        assert code == 2 and message in err
    assert catalog_content(cli.lake) == before
    assert Catalog.in_lake(cli.lake).workspace_of_connection(1371036433).slug == "acme"


def test_empty_lists_print_their_header(cli):
    """A new lake has no workspace, and a new workspace no connection or key: a table
    with its header only, not a traceback."""
    code, out, err = cli("workspaces", "list")
    assert (code, err) == (0, "")
    assert out.split() == ["id", "slug", "name", "projectKey", "created"]
    workspace = cli.json("workspaces", "create", "--name", "Empty")["id"]
    for noun in ("connections", "keys"):
        code, out, err = cli(noun, "list", "--workspace", str(workspace))
        assert (code, err, len(out.splitlines())) == (0, "", 1)
