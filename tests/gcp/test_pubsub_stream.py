"""PubSubStream on the Pub/Sub emulator: what is published arrives as records (data, attributes,
ids, publish times), and what cannot be published is reported, never dropped."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from iotpipe.adapters.gcp import PubSubStream, publisher_client, record_from_message
from iotpipe.adapters.gcp.pubsub import MAX_MESSAGE_BYTES
from iotpipe.application.payloads import is_packed_text, unpack
from iotpipe.ports import StreamMessage
from tests.gcp_support import PROJECT, Server, free_port, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(pubsub_server: Server) -> Iterator[tuple[str, str]]:
    """A new topic and a pull subscription on it: ``(topic path, subscription path)``."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(PROJECT, unique("readings"))
    subscription = subscriber.subscription_path(PROJECT, unique("pull"))
    publisher.create_topic(name=topic_path)
    subscriber.create_subscription(name=subscription, topic=topic_path)
    yield topic_path, subscription
    subscriber.close()


def pull_all(subscription: str, expected: int, timeout_s: float = 20) -> list[Any]:
    """Pull (and acknowledge) until ``expected`` messages came, or the time is up."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        try:
            answer = subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
        except exceptions.DeadlineExceeded:  # the emulator's way of saying "nothing yet"
            continue
        if answer.received_messages:
            ack_ids = [m.ack_id for m in answer.received_messages]
            subscriber.acknowledge(subscription=subscription, ack_ids=ack_ids)
            got += [m.message for m in answer.received_messages]
    subscriber.close()
    return got


def test_published_messages_arrive_with_attributes_ids_and_publish_times(
    topic: tuple[str, str],
) -> None:
    topic_path, subscription = topic
    stream = PubSubStream(topic_path, publisher_client())
    messages = [StreamMessage(f"dev-{i % 7}", f'[{{"n":{i}}}]'.encode()) for i in range(120)]
    before = time.time_ns() // 1_000_000
    result = stream.publish(messages)
    after = time.time_ns() // 1_000_000
    assert result.failed == () and result.error is None
    pulled = pull_all(subscription, len(messages))
    assert sorted(m.data for m in pulled) == sorted(m.data for m in messages)
    by_data = {m.data: m for m in messages}
    for message in pulled:
        assert dict(message.attributes) == {"device_id": by_data[message.data].key}
        assert message.ordering_key == ""  # ordering stays off
        record = record_from_message(message)
        assert record.record_id == message.message_id and record.data == message.data
        assert record.arrived_ms is not None and before - 1000 <= record.arrived_ms <= after + 1000
    assert len({m.message_id for m in pulled}) == len(messages)


def test_a_missing_topic_fails_every_message_and_says_why(pubsub_server: Server) -> None:
    stream = PubSubStream(f"projects/{PROJECT}/topics/{unique('nowhere')}", publisher_client())
    result = stream.publish([StreamMessage("d1", b"[1]"), StreamMessage("d2", b"[2]")])
    assert result.failed == (0, 1)
    assert result.error is not None and "NotFound" in result.error


def test_an_oversized_message_is_reported_and_the_others_published(
    topic: tuple[str, str],
) -> None:
    topic_path, subscription = topic
    stream = PubSubStream(topic_path, publisher_client())
    # Random bytes do not compress: packed they would be larger, so they go as they are.
    big = StreamMessage("d2", os.urandom(MAX_MESSAGE_BYTES + 1))
    result = stream.publish([StreamMessage("d1", b"[1]"), big, StreamMessage("d3", b"[3]")])
    assert result.failed == (1,) and result.error is not None and "10 MB" in result.error
    assert sorted(m.data for m in pull_all(subscription, 2)) == [b"[1]", b"[3]"]


def test_the_limit_applies_to_the_bytes_sent_so_a_packed_message_may_pass_it(
    topic: tuple[str, str],
) -> None:
    topic_path, subscription = topic
    data = b"[" + b'{"device_id":"d1","temperature":21.5},' * 300_000 + b"{}]"  # ~11.7 MB
    assert len(data) > MAX_MESSAGE_BYTES
    plain = PubSubStream(topic_path, publisher_client(), compress=False)
    refused = plain.publish([StreamMessage("d1", data)])
    assert refused.failed == (0,) and refused.error is not None and "10 MB" in refused.error
    packed = PubSubStream(topic_path, publisher_client())
    assert packed.publish([StreamMessage("d1", data)]).failed == ()
    [message] = pull_all(subscription, 1)
    assert is_packed_text(message.data) and len(message.data) < MAX_MESSAGE_BYTES // 100
    assert unpack(message.data) == data


def test_an_unreachable_service_is_reported_within_the_timeout(
    pubsub_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nobody there
    stream = PubSubStream(f"projects/{PROJECT}/topics/t-any", publisher_client(), timeout_s=2)
    started = time.monotonic()
    result = stream.publish([StreamMessage("d1", b"[1]"), StreamMessage("d2", b"[2]")])
    assert result.failed == (0, 1) and result.error
    assert time.monotonic() - started < 10


def test_a_topic_must_be_a_full_path() -> None:
    with pytest.raises(ValueError, match="projects/"):
        PubSubStream("readings", publisher=None)


def test_only_messages_over_1_kb_that_packing_shrinks_are_packed(topic: tuple[str, str]) -> None:
    topic_path, subscription = topic
    small = b"[" + b'{"n":1},' * 110 + b"{}]"  # 883 bytes: under the threshold
    large = b"[" + b'{"n":1},' * 130 + b"{}]"  # 1,043 bytes
    noise = b"\x00" + os.urandom(2000)  # incompressible: packed it would be larger
    sent = [StreamMessage("d", m) for m in (small, large, noise)]
    assert PubSubStream(topic_path, publisher_client()).publish(sent).failed == ()
    got = {unpack(m.data): m.data for m in pull_all(subscription, 3)}
    assert got.keys() == {small, large, noise}
    assert got[small] == small and got[noise] == noise
    assert is_packed_text(got[large]) and len(got[large]) < len(large)
