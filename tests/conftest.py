"""Settings for the whole suite."""

from __future__ import annotations

import os

from bq_emulator import bq_client, bq_endpoint
from hypothesis import settings

# One Hypothesis profile for every test, with CI set or not: no per-example deadline (a
# loaded 2-core machine makes a 200 ms deadline flaky) and examples printed on failure.
# `HYPOTHESIS_PROFILE=thorough` runs more examples.
settings.register_profile("eventpipe", deadline=None, print_blob=True)
settings.register_profile("thorough", parent=settings.get_profile("eventpipe"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "eventpipe"))

__all__ = ["bq_client", "bq_endpoint"]  # the BigQuery emulator, for every test that asks
