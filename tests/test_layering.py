"""Imports only go down (docs/architecture.md): a new import against the layering fails.

`KNOWN` lists the imports against it that the code still has (issue 13 removes them):
the list may only shrink, and an entry that is gone must be taken off it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "eventpipe"

# package -> the packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "jobs": {"pipelines", "transforms", "io", "api", "identity", "sample", "catalog", "schemas"},
    "pipelines": {"transforms", "io", "api", "identity", "schemas"},
    "transforms": {"schemas"},
    "io": {"schemas"},
    "api": {"schemas"},
    "identity": {"schemas"},
    "sample": {"schemas"},
    "catalog": {"schemas"},
    "schemas": set(),
}

KNOWN: set[tuple[str, str]] = {
    ("api.bigquery_backend", "io.bigquery"),
    ("api.filters", "io.index_format"),
    ("api.index_lookup", "io.index_format"),
    ("api.index_lookup", "io.row_store"),
    ("api.index_lookup", "io.serving_index"),
    ("api.index_pages", "io.row_store"),
    ("identity.graph", "transforms.duck"),
    ("identity.rules_sql", "transforms.duck"),
    ("identity.rules_sql", "transforms.identity_rules"),
    ("identity.stitch", "transforms.stitch"),
    ("identity.store", "io.lake"),
    ("identity.store", "transforms.duck"),
    ("io.bigquery", "transforms.failures"),
    ("io.bigquery_rows", "transforms.duck"),
    ("io.bigquery_rows", "transforms.failures"),
    ("io.bigquery_sinks", "transforms.duck"),
    ("io.bigquery_sinks", "transforms.failures"),
    ("io.bigquery_sinks", "transforms.stages"),
    ("io.bigquery_sinks", "transforms.streaming"),
    ("io.bigquery_staged", "transforms.dedupe"),
    ("io.compaction", "transforms.failures"),
    ("io.lake_sink", "transforms.dedupe"),
    ("io.lake_sink", "transforms.duck"),
    ("io.lake_sink", "transforms.failures"),
    ("io.lake_sink", "transforms.normalise"),
    ("io.lake_sink", "transforms.parse"),
    ("io.lake_sink", "transforms.stages"),
    ("io.pubsub", "transforms.duck"),
    ("io.pubsub", "transforms.failures"),
    ("io.pubsub", "transforms.parse"),
    ("io.pubsub", "transforms.stages"),
    ("io.raw_files", "transforms.failures"),
    ("io.raw_files", "transforms.stages"),
    ("io.raw_records", "transforms.failures"),
    ("io.raw_records", "transforms.parse"),
    ("sample.invalid", "transforms.failures"),
    ("schemas.bigquery_schema", "transforms.failures"),
    ("transforms.stages", "identity.store"),
    ("transforms.stages", "io.arrow_coder"),
    ("transforms.streaming_stages", "io.lake"),
    ("transforms.streaming_stages", "io.lake_sink"),
}


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _is_module(dotted: str) -> bool:
    path = PACKAGE.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    """The eventpipe modules `path` imports (anywhere in it, lazy imports too), without
    the `eventpipe.` prefix; `from eventpipe.x import y` names x.y when y is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("eventpipe.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("eventpipe."):
            base = node.module.removeprefix("eventpipe.")
            subs = {f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")}
            found |= {f"eventpipe.{m}" for m in subs} or {node.module}
    return {name.removeprefix("eventpipe.") for name in found}


def upward_imports() -> set[tuple[str, str]]:
    """(importing module, imported module) pairs against ALLOWED."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        package = module.split(".")[0]
        if package not in ALLOWED:
            continue  # eventpipe/__init__.py
        for imported in imports_of(path):
            target = imported.split(".")[0]
            if target != package and target not in ALLOWED[package]:
                found.add((module, imported))
    return found


def test_no_new_import_goes_against_the_layering():
    new = upward_imports() - KNOWN
    assert not new, f"imports against docs/architecture.md's layering: {sorted(new)}"


def test_the_known_exceptions_are_still_there():
    gone = KNOWN - upward_imports()
    assert not gone, f"fixed: take these off KNOWN in tests/test_layering.py: {sorted(gone)}"


def test_every_package_has_its_rule():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
