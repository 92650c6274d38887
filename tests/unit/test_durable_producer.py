"""DurableProducer replaces a wedged aiokafka producer (aiokafka #1017), found by the chaos suite.

The failure it guards against, seen in tests/chaos/test_broker_restart.py with a 40 s broker outage:
a batch expired while its partition had no leader (LeaderNotAvailableError) after taking its sequence
numbers, and from then on the broker refused every batch of that partition with
OutOfOrderSequenceNumber; publishing never resumed. The stand-in below fails the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from aiokafka.errors import LeaderNotAvailableError, OutOfOrderSequenceNumber

from pipeline import kafka
from pipeline.settings import Settings


class WedgingProducer:
    """Acknowledges sends until ``wedged``; then fails each one with ``error`` (as aiokafka does)."""

    made: ClassVar[list[WedgingProducer]] = []

    def __init__(self) -> None:
        self.wedged: BaseException | None = None
        self.sender_died = False
        self.started = self.stopped = False
        self.sent: list[bytes | None] = []
        WedgingProducer.made.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> asyncio.Future[Any]:
        if self.sender_died:
            raise OutOfOrderSequenceNumber()  # aiokafka re-raises the error that killed its sender
        # Like aiokafka, the future is settled later, by the sender, not before send() returns.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.wedged is not None:
            loop.call_soon(future.set_exception, self.wedged)
        else:
            self.sent.append(value)
            loop.call_soon(future.set_result, len(self.sent))
        return future


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[WedgingProducer]:
    WedgingProducer.made = []
    monkeypatch.setattr(kafka, "_aiokafka_producer", lambda settings: WedgingProducer())
    return WedgingProducer.made


async def test_a_producer_refused_with_out_of_order_sequence_is_replaced(producers: list[WedgingProducer]) -> None:
    producer = kafka.make_producer(Settings())
    await producer.start()
    assert await producer.send_and_wait("t", b"1") == 1
    producers[0].wedged = LeaderNotAvailableError()  # the expired batch: retriable, not yet wedged
    with pytest.raises(LeaderNotAvailableError):
        await producer.send_and_wait("t", b"2")
    producers[0].wedged = OutOfOrderSequenceNumber()  # every later batch of the partition
    with pytest.raises(OutOfOrderSequenceNumber):
        await producer.send_and_wait("t", b"2")
    assert len(producers) == 1 and producer.replacements == 0

    assert await producer.send_and_wait("t", b"2") == 1  # the caller's retry goes to a new producer
    assert len(producers) == 2 and producers[1].started and producers[1].sent == [b"2"]
    assert producers[0].stopped and producer.replacements == 1
    assert await producer.send_and_wait("t", b"3") == 2  # and stays there
    await producer.stop()
    assert producers[1].stopped


async def test_a_producer_whose_sender_died_is_replaced(producers: list[WedgingProducer]) -> None:
    producer = kafka.make_producer(Settings())
    await producer.start()
    producers[0].sender_died = True
    with pytest.raises(OutOfOrderSequenceNumber):
        await producer.send("t", b"1")
    assert await producer.send_and_wait("t", b"1") == 1
    assert producer.replacements == 1 and producers[1].sent == [b"1"]


async def test_a_replacement_while_the_broker_is_away_is_tried_again(
    producers: list[WedgingProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = kafka.make_producer(Settings())
    await producer.start()
    producers[0].wedged = OutOfOrderSequenceNumber()
    with pytest.raises(OutOfOrderSequenceNumber):
        await producer.send_and_wait("t", b"1")

    async def broker_away(self: WedgingProducer) -> None:
        raise ConnectionRefusedError()

    monkeypatch.setattr(WedgingProducer, "start", broker_away)
    with pytest.raises(ConnectionRefusedError):
        await producer.send("t", b"1")
    assert producers[1].stopped and producer.replacements == 0
    monkeypatch.undo()
    monkeypatch.setattr(kafka, "_aiokafka_producer", lambda settings: WedgingProducer())
    assert await producer.send_and_wait("t", b"1") == 1
    assert producer.replacements == 1 and producers[2].sent == [b"1"]
