"""pytest plugin of `make mutate` (`-p mutate_selection` in `[tool.mutmut]`): a mutant of a
module listed in FAST_TESTS runs only the tests of that module's fast files.

mutmut runs, per mutant, every selected test that reached the mutated function; for the
serving-index modules those include the end-to-end API tests (an indexed lake per test
module, seconds per mutant), whose lookups the in-process tests of `tests/serving` cover.
The stats run, the clean run and the other modules are not affected.
"""

from __future__ import annotations

import os

import pytest

FAST_TESTS: dict[str, tuple[str, ...]] = {
    "eventpipe.serving.index_lookup.": ("tests/serving/",),
    "eventpipe.serving.index_pages.": ("tests/serving/",),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" not in mutant:
        return
    paths = next((p for module, p in FAST_TESTS.items() if mutant.startswith(module)), None)
    if paths is None:
        return
    kept = [item for item in items if item.nodeid.startswith(paths)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
