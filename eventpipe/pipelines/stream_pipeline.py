"""The streaming graph: Pub/Sub -> the import's stages -> kpid -> dedupe -> windowed lake files.

```
messages --MessagesToRecords--> record chunks --apply_stages (as import)--> events
events --StitchKpids--> --DeduplicateEvents--> (shard, events) [--RejectTooOldEvents-->]
    --WriteWindowedEvents--> lake/events (+ lake/raw), late events included
every failed output --WriteWindowedFailed--> lake/failed [+ dead-letter topic]
```

The source is a parameter: `build_stream_pipeline` takes the PCollection of
Pub/Sub messages, so tests feed a TestStream and the job feeds Pub/Sub.

The sink (io.sink) writes the deduplicated events: the lake's window files, or BigQuery's
insert API in batches (late events inserted like any other, counted `late`); rows a sink
refuses join the failed output. Failed rows always go to lake/failed, and kpids come from
the lake's identity map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import apache_beam as beam

from eventpipe.identity.stitch_stage import StitchKpids
from eventpipe.io.pubsub import MessagesToRecords, failed_to_messages
from eventpipe.io.sink import Sink
from eventpipe.io.stream_writers import WriteWindowedFailed
from eventpipe.pipelines.import_pipeline import apply_stages
from eventpipe.transforms.enrich import EnrichOptions
from eventpipe.transforms.stream_stages import DeduplicateEvents, RejectTooOldEvents

LOCAL_RUNNER = "BundleBasedDirectRunner"
"""The local runner for streaming: the DirectRunner's streaming engine. (The DirectRunner
itself first tries Prism, which needs a download, then the FnApiRunner, which has no streaming.)"""


@dataclass(frozen=True)
class StreamConfig:
    """What one streaming run needs; built by the job from its flags."""

    subscription: str
    lake: str  # identity map, failed rows
    run_id: str
    run_start: datetime
    sink: Sink  # the events
    default_connection: int | None = None
    enrich: EnrichOptions | None = field(default_factory=EnrichOptions)  # None: no enrichment
    window_s: int = 60
    allowed_lateness_s: float = 300.0  # how long a window's rows are gathered (late: written too)
    max_event_age_s: float | None = None  # set: older events fail with reason `too_old`
    dedupe_expiry_s: float = 600.0
    shards: int = 4
    kpid_refresh_s: float = 300.0
    dead_letter_topic: str | None = None
    max_records: int = 5000  # records per chunk handed to the stages


def build_stream_pipeline(messages: beam.PCollection, config: StreamConfig) -> None:
    """Add the streaming graph, fed by `messages` (PubsubMessage elements)."""
    run = config.run_id
    records, not_utf8 = messages | "MessagesToRecords" >> MessagesToRecords(
        config.subscription, run, config.max_records
    )
    events, failures = apply_stages(
        records, run, config.run_start, config.default_connection, config.enrich
    )
    failures = (*failures, not_utf8)
    unique = (
        events
        | "StitchKpids" >> StitchKpids(config.lake, config.kpid_refresh_s)
        | "DeduplicateEvents" >> DeduplicateEvents(config.shards, config.dedupe_expiry_s)
    )
    if config.max_event_age_s is not None:
        unique, too_old = unique | "RejectTooOld" >> RejectTooOldEvents(config.max_event_age_s, run)
        failures = (*failures, too_old)
    refused = unique | "WriteEvents" >> config.sink.write_stream(
        run, config.run_start, config.window_s, config.allowed_lateness_s
    )
    if refused is not None:
        failures = (*failures, refused)
    failed = failures | "AllFailed" >> beam.Flatten()
    _ = failed | "WriteFailed" >> WriteWindowedFailed(
        config.lake, run, config.window_s, config.shards
    )
    if config.dead_letter_topic:
        _ = (
            failed
            | "FailedToMessages" >> beam.FlatMap(failed_to_messages)
            | "WriteDeadLetters" >> beam.io.WriteToPubSub(config.dead_letter_topic)
        )
