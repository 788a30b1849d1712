"""The landing log on a Pub/Sub topic: one message per accepted request (its envelope).

`append` publishes every envelope of a group and returns once Pub/Sub acknowledged each
(the publisher batches them into few requests); `eventpipe stream` reads the envelopes
from a subscription of the topic.
"""

from __future__ import annotations


class PubSubLanding:
    """A landing sink publishing each JSONL envelope line to `topic` (projects/P/topics/T)."""

    def __init__(self, topic: str, timeout: float = 30.0) -> None:
        from google.cloud import pubsub_v1

        self.topic = topic
        self.timeout = timeout
        self.publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1000, max_latency=0.001)
        )

    def append(self, data: bytes) -> None:
        """Publish each line of `data`; raises when any is not acknowledged in time."""
        futures = [
            self.publisher.publish(self.topic, line) for line in data.splitlines() if line.strip()
        ]
        for future in futures:
            future.result(timeout=self.timeout)

    def due_in(self) -> float | None:
        return None

    def close_if_due(self) -> None:
        return None

    def close(self) -> None:
        self.publisher.stop()
