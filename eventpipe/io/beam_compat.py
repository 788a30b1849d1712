"""Workarounds for Beam 2.77's local streaming runner, in one place, behind a version guard.

They touch Beam internals (the DirectRunner's Pub/Sub evaluator, the state sampler), so
`local_streaming_runner` refuses to apply them to another Beam version: review them
against the new version, then update `BEAM_VERSION`.

1. Pub/Sub: Beam's local evaluator pulls at most 10 messages with a 30 s blocking pull
   (the watermark, the wall clock at each pull, stops while the stream is quiet), never
   ends and cannot drain. `_LocalPubSubReadEvaluator` pulls `max_messages` with a short
   timeout and ends the source on `pubsub.request_stop` or after `idle_stop_seconds`
   without a message; the runner then fires every window and timer and finishes (a
   drain). It acks messages once handed to the runner, like Beam's.
2. Metrics: the executor caches one state per step and thread with the metrics container
   of the step's first bundle, so later bundles' counter updates are lost. Each bundle
   gets a state with its own container. The patch is undone on leaving: left in place,
   it keeps DuckDB's modules alive past clean-up (nanobind `leaked ...` lines at exit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.utils.timestamp import MAX_TIMESTAMP, Timestamp

from eventpipe.io.pubsub import LocalReadSettings, request_stop, stop_event

log = logging.getLogger(__name__)

BEAM_VERSION = "2.77"
"""The Beam release (major.minor) the workarounds were written for and tested with."""


class UnsupportedBeamVersion(RuntimeError):
    """The installed Beam is not the one the workarounds were written for."""


def check_beam_version(installed: str = beam.__version__) -> None:
    """Raise `UnsupportedBeamVersion` unless `installed` is a `BEAM_VERSION` release."""
    if installed.split(".")[:2] != BEAM_VERSION.split("."):
        raise UnsupportedBeamVersion(
            f"eventpipe's local streaming workarounds (eventpipe/io/beam_compat.py) were "
            f"written for Beam {BEAM_VERSION}, installed is {installed}: review them and "
            f"update BEAM_VERSION, or run on Dataflow"
        )


@contextmanager
def local_streaming_runner() -> Iterator[None]:
    """Apply, while in the block, the fixes Beam's local streaming runner needs."""
    check_beam_version()
    _use_local_reader()
    with _per_bundle_metrics():
        yield


def _use_local_reader() -> None:
    """Make the DirectRunner read Pub/Sub with `_LocalPubSubReadEvaluator` (idempotent)."""
    from apache_beam.runners.direct.direct_runner import _DirectReadFromPubSub
    from apache_beam.runners.direct.transform_evaluator import TransformEvaluatorRegistry

    TransformEvaluatorRegistry._test_evaluators_overrides[_DirectReadFromPubSub] = (
        _local_evaluator_class()
    )


@contextmanager
def _per_bundle_metrics() -> Iterator[None]:
    """Give each bundle a state with its own metrics container (fix 2), undone on leaving."""
    from apache_beam.runners.worker.statesampler import StateSampler

    original = StateSampler.scoped_state

    def scoped_state(self, name_context, state_name, io_target=None, metrics_container=None):
        state = original(self, name_context, state_name, io_target, metrics_container)
        if metrics_container is not None and state.metrics_container is not metrics_container:
            for name, cached in list(self._states_by_name.items()):
                if cached is state:
                    del self._states_by_name[name]
            state = original(self, name_context, state_name, io_target, metrics_container)
        return state

    StateSampler.scoped_state = scoped_state  # type: ignore[method-assign]
    try:
        yield
    finally:
        StateSampler.scoped_state = original  # type: ignore[method-assign]


def _local_evaluator_class() -> type:
    from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
    from apache_beam.runners.direct.util import TransformResult
    from google.api_core import exceptions as gexc

    class _LocalPubSubReadEvaluator(_PubSubReadEvaluator):
        """Pulls many messages with a short timeout; ends on a stop request or when idle."""

        # Per stop key: when the current run of empty pulls began (None: the last pull had messages).
        _idle_since: dict[str, float | None] = {}

        def settings(self) -> LocalReadSettings:
            settings = getattr(self.source, "local_settings", None)
            return settings or LocalReadSettings(stop_key=self._sub_name)

        def _note_pull(self, got_messages: bool) -> None:
            """Track idleness; request the stop once pulls found nothing for `idle_stop_seconds`."""
            settings = self.settings()
            if got_messages:
                self._idle_since[settings.stop_key] = None
                return
            now = time.monotonic()
            since = self._idle_since.get(settings.stop_key) or now
            self._idle_since[settings.stop_key] = since
            idle = settings.idle_stop_seconds
            if idle is not None and now - since >= idle:
                log.info("no message for %.0fs: stopping the Pub/Sub reader", idle)
                request_stop(settings.stop_key)

        def _read_from_pubsub(self, timestamp_attribute):
            settings = self.settings()
            client = self._get_subscriber_client(self._applied_ptransform)
            try:
                response = client.pull(
                    subscription=self._sub_name,
                    max_messages=settings.max_messages,
                    timeout=settings.pull_timeout,
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                received = []
            else:
                received = response.received_messages
            self._note_pull(bool(received))
            if not received:
                return []
            results = []
            for rm in received:
                message = PubsubMessage._from_message(rm.message)
                results.append((Timestamp.from_utc_datetime(rm.message.publish_time), message))
            client.acknowledge(subscription=self._sub_name, ack_ids=[r.ack_id for r in received])
            return results

        def finish_bundle(self):
            if stop_event(self.settings().stop_key).is_set():
                return TransformResult(self, [], [], None, {None: MAX_TIMESTAMP})
            return super().finish_bundle()

    return _LocalPubSubReadEvaluator
