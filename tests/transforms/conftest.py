"""Fixtures of the import-pipeline tests (helpers live in pipeline_support.py)."""

from __future__ import annotations

import pytest

from pipeline_support import Stages


@pytest.fixture(scope="session")
def stages() -> Stages:
    return Stages(default_connection=1)


@pytest.fixture(scope="session")
def stages_without_connection() -> Stages:
    return Stages(default_connection=None)
