"""Fixtures of the streaming tests: the Pub/Sub emulator, message and event factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from eventpipe.io.beam_compat import local_streaming_runner
from eventpipe.io.pubsub_emulator import EMULATOR, PubSubEmulator

from stream_support import T0


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """The real Pub/Sub emulator on a free 127.0.0.1 port, for the whole session."""
    if not EMULATOR.exists():
        pytest.fail(f"the Pub/Sub emulator is not installed at {EMULATOR}")
    with PubSubEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session", autouse=True)
def local_runner() -> Iterator[None]:
    """The fixes the local streaming runner needs (see io.beam_compat)."""
    with local_streaming_runner():
        yield


@pytest.fixture
def at() -> Callable[[float], datetime]:
    """Seconds after T0 as a datetime."""
    return lambda seconds: T0 + timedelta(seconds=seconds)
