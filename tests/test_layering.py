"""Imports only go down (docs/architecture.md): an import against the layering fails."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "eventpipe"

# package -> the packages it may import (besides itself); docs/architecture.md draws it
ALLOWED: dict[str, set[str]] = {
    "jobs": {
        "pipelines",
        "transforms",
        "io",
        "identity",
        "api",
        "serving",
        "sample",
        "catalog",
        "collector",
        "listeners",
        "query",
        "core",
        "schemas",
    },
    "collector": {"listeners", "api", "transforms", "io", "catalog", "core", "schemas"},
    "listeners": {"api", "serving", "query", "transforms", "core", "schemas"},
    "pipelines": {"transforms", "io", "identity", "core", "schemas"},
    "api": {"serving", "query", "core", "schemas"},
    "identity": {"io", "core", "schemas"},
    "transforms": {"core", "schemas"},
    "io": {"serving", "core", "schemas"},
    "serving": {"query", "core", "schemas"},
    "query": {"schemas"},  # the filter language: tree, SQL renderer, dialects
    "catalog": {"core", "schemas"},
    "sample": {"schemas"},
    "core": {"schemas"},
    "schemas": set(),
}


def _module(package: Path, path: Path) -> str:
    name = ".".join(path.relative_to(package).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _is_module(package: Path, dotted: str) -> bool:
    path = package.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path, package: Path = PACKAGE) -> set[str]:
    """The modules of `package` that `path` imports (anywhere in it, lazy imports too),
    without the package prefix; `from eventpipe.x import y` names x.y when y is a module."""
    prefix = f"{package.name}."
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(prefix)}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix):
            base = node.module.removeprefix(prefix)
            subs = {
                f"{base}.{a.name}" for a in node.names if _is_module(package, f"{base}.{a.name}")
            }
            found |= {prefix + m for m in subs} or {node.module}
    return {name.removeprefix(prefix) for name in found}


def upward_imports(
    package: Path = PACKAGE, allowed: dict[str, set[str]] = ALLOWED
) -> set[tuple[str, str]]:
    """(importing module, imported module) pairs against `allowed`."""
    found = set()
    for path in sorted(package.rglob("*.py")):
        module = _module(package, path)
        layer = module.split(".")[0]
        if layer not in allowed:
            continue  # eventpipe/__init__.py
        for imported in imports_of(path, package):
            target = imported.split(".")[0]
            if target != layer and target not in allowed[layer]:
                found.add((module, imported))
    return found


def test_no_import_goes_against_the_layering():
    found = upward_imports()
    assert not found, f"imports against docs/architecture.md's layering: {sorted(found)}"


def test_every_package_has_its_rule():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


def test_the_allowed_imports_have_no_cycle():
    done: set[str] = set()

    def below(layer: str, path: tuple[str, ...]) -> None:
        assert layer not in path, f"cycle in ALLOWED: {' -> '.join((*path, layer))}"
        if layer not in done:
            for lower in ALLOWED[layer]:
                below(lower, (*path, layer))
            done.add(layer)

    for layer in ALLOWED:
        below(layer, ())


def _tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "eventpipe"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_the_checker_catches_an_upward_a_sibling_and_a_lazy_import(tmp_path: Path):
    package = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "schemas/__init__.py": "",
            "schemas/failures.py": "from eventpipe.transforms.parse import X\n",
            "transforms/__init__.py": "",
            "transforms/parse.py": "from eventpipe.schemas import failures\nX = 1\n",
            "io/__init__.py": "",
            "io/sink.py": "def f():\n    from eventpipe.transforms import parse\n",
            "core/__init__.py": "",
            "core/duck.py": "import eventpipe.schemas.failures\n",
        },
    )
    allowed = {
        "schemas": set(),
        "core": {"schemas"},
        "transforms": {"core", "schemas"},
        "io": {"core", "schemas"},
    }
    assert upward_imports(package, allowed) == {
        ("schemas.failures", "transforms.parse"),  # upward
        ("io.sink", "transforms.parse"),  # sibling, inside a function
    }
