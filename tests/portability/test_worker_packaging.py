"""What Dataflow (or any remote runner) installs on its workers from `--setup_file ./setup.py`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def test_the_sdist_built_for_workers_holds_every_module_and_the_dependencies(tmp_path):
    # Beam's stager runs `python setup.py sdist` with the --setup_file given. It runs on a
    # copy of the project here, so the build leaves no egg-info in the repository.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "eventpipe", source / "eventpipe", ignore=IGNORED)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    [sdist] = tmp_path.glob("eventpipe-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        [pkg_info] = [n for n in names if n.endswith("eventpipe.egg-info/requires.txt")]
        requires = archive.extractfile(pkg_info).read().decode()
    shipped = {n.split("/", 1)[1] for n in names if "/eventpipe/" in n and n.endswith(".py")}
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "eventpipe").rglob("*.py")}
    assert modules <= shipped
    # The GeoLite2 database and the user-agent rules come with these packages on each worker.
    for requirement in ("maxminddb-geolite2", "ua-parser", "apache-beam[gcp]", "duckdb", "pyarrow"):
        assert requirement in requires
