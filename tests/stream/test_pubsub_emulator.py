"""The emulator helper starts on a port nobody else holds, even if its first pick is taken."""

from __future__ import annotations

import os
import socket

from eventpipe.io.pubsub_emulator import PubSubEmulator


def test_a_port_taken_before_the_emulator_binds_it_is_not_mistaken_for_the_emulator() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        emulator = PubSubEmulator()
        emulator.port, emulator.host = taken, f"127.0.0.1:{taken}"  # lost the race for it
        with emulator:
            assert emulator.port != taken
            assert os.environ["PUBSUB_EMULATOR_HOST"] == emulator.host
            topic, subscription = emulator.create("taken-port")
            assert topic.endswith("/topics/taken-port")
            assert subscription.endswith("/subscriptions/taken-port")
