"""The dead-letter topic, operators' view: list the dead letters and replay them after a fix.

A dead letter's status comes from two places: the `dead_letter_resolutions` table (`replayed` when
`dlq replay` re-published it, `resolved` when the importer then wrote the order without error, in the
same transaction) and the topic itself (a replay that failed again is a new dead letter whose
`replay_of` names the old one: the old one is then `failed_again`). `dlq list` shows the open and
the replayed-but-not-yet-processed ones; `--all` shows every one with its status.

Replay re-publishes each dead letter to the topic its stage reads, with the header
``galleryflow-dead-letter-id``: a normaliser dead letter goes back to the raw topic, an importer one
to the canonical topic, both with the exact bytes and key of the original message (read back from
its topic, partition and offset; the dead letter's own copy is the fallback when the broker no
longer has it). A connector dead letter never reached the raw topic: replay runs the connector's
validation again (after the fix) and publishes the envelope, or writes a new connector dead letter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from pipeline import deadletter, services
from pipeline.kafka import ensure_topics, make_producer
from pipeline.messages import Incoming
from pipeline.settings import Settings
from schemas import wire

OPEN_STATUSES = ("open", "replayed")


async def read_dead_letters(settings: Settings) -> list[dict[str, Any]]:
    """Every dead letter on the topic, oldest first (reads from the beginning up to the end)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.bootstrap_servers(settings),
        client_id=f"{settings.app_id}-dlq-reader",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(settings.deadletter_topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(settings.deadletter_topic) or set()
        tps = [TopicPartition(settings.deadletter_topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        letters: list[tuple[str, dict[str, Any]]] = []
        remaining = {tp for tp in tps if ends[tp] > begins[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    try:
                        letter = wire.loads(record.value or b"{}")  # numbers stay exact
                        if not isinstance(letter, dict):
                            raise ValueError("not an object")
                    except Exception:
                        letter = {"error": "unreadable dead letter", "original": repr(record.value)}
                    letter.setdefault("dead_letter_offset", record.offset)
                    letters.append((str(letter.get("time", "")), letter))
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        letters.sort(key=lambda pair: pair[0])
        return [letter for _, letter in letters]
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- status


async def load_resolutions(settings: Settings) -> dict[str, dict[str, Any]]:
    """What became of replayed dead letters, by dead-letter id (empty before migration 005)."""
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        rows = await conn.fetch(
            """SELECT dead_letter_id, status, replay_count, replayed_at, resolved_at, resolved_by
                 FROM dead_letter_resolutions"""
        )
    except asyncpg.UndefinedTableError:
        return {}
    finally:
        await conn.close()
    return {row["dead_letter_id"]: dict(row) for row in rows}


def with_status(
    letters: Sequence[dict[str, Any]], resolutions: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each letter with ``status``: open, replayed (not processed yet), resolved or failed_again."""
    replayed_as = {
        letter["replay_of"]: letter.get("id") for letter in letters if isinstance(letter.get("replay_of"), str)
    }
    result = []
    for letter in letters:
        ident = letter.get("id")
        resolution = resolutions.get(ident) if isinstance(ident, str) else None
        status = "open"
        if resolution is not None and resolution["status"] == "resolved":
            status = "resolved"
        elif ident in replayed_as:
            status = "failed_again"
        elif resolution is not None:
            status = "replayed"
        shown = {**letter, "status": status}
        if ident in replayed_as:
            shown["replayed_as"] = replayed_as[ident]
        result.append(shown)
    return result


async def list_dead_letters(settings: Settings, *, include_done: bool = False) -> list[dict[str, Any]]:
    """Dead letters with their status; without ``include_done`` only those still waiting (open or
    replayed and not yet processed)."""
    letters = with_status(await read_dead_letters(settings), await load_resolutions(settings))
    return letters if include_done else [letter for letter in letters if letter["status"] in OPEN_STATUSES]


# ---------------------------------------------------------------- replay


class ReplayError(LookupError):
    """The dead letters asked for cannot be replayed (unknown id, or already resolved)."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """What replay did with one dead letter."""

    id: str
    stage: str
    outcome: str  # "published" | "failed_again" | "skipped"
    topic: str | None = None
    detail: str = ""
    new_dead_letter: str | None = None


def choose(letters: Sequence[dict[str, Any]], ids: Sequence[str] | None) -> list[dict[str, Any]]:
    """The letters to replay: the ones named (open or replayed), or every open one."""
    if not ids:
        return [letter for letter in letters if letter["status"] == "open"]
    by_id = {letter.get("id"): letter for letter in letters}
    chosen = []
    for ident in ids:
        letter = by_id.get(ident)
        if letter is None:
            raise ReplayError(f"no dead letter with id {ident!r}")
        if letter["status"] not in OPEN_STATUSES:
            detail = f" (replayed as {letter['replayed_as']})" if letter.get("replayed_as") else ""
            raise ReplayError(f"dead letter {ident} is already {letter['status']}{detail}")
        chosen.append(letter)
    return chosen


async def replay_dead_letters(
    settings: Settings,
    ids: Sequence[str] | None = None,
    *,
    progress: Callable[[Replayed], None] | None = None,
) -> list[Replayed]:
    """Re-publish the dead letters named by ``ids`` (or every open one); returns what happened."""
    chosen = choose(await list_dead_letters(settings, include_done=True), ids)
    if not chosen:
        return []
    await ensure_topics(settings)
    producer = make_producer(settings)
    reader = _OriginalReader(settings)
    conn = await asyncpg.connect(services.database_url(settings))
    await producer.start()
    await reader.start()
    results: list[Replayed] = []
    try:
        for letter in chosen:
            result = await _replay_one(settings, producer, reader, conn, letter)
            if result.outcome != "skipped":
                await _mark_replayed(conn, result)
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        await reader.stop()
        await producer.stop()
        await conn.close()
    return results


async def _replay_one(
    settings: Settings,
    producer: AIOKafkaProducer,
    reader: _OriginalReader,
    conn: asyncpg.Connection,
    letter: dict[str, Any],
) -> Replayed:
    ident, stage = str(letter["id"]), str(letter.get("stage"))
    header = [(deadletter.DEAD_LETTER_ID_HEADER, ident.encode("ascii"))]
    if stage == "connector":
        return await _replay_connector(settings, producer, conn, letter, header)
    topic = {"normaliser": settings.raw_topic, "importer": settings.canonical_topic}.get(stage)
    if topic is None:
        return Replayed(ident, stage, "skipped", detail=f"unknown stage {stage!r}")
    found = await reader.read(letter)
    if found is None:
        if letter.get("original_truncated"):
            return Replayed(ident, stage, "skipped", detail="the broker no longer has the original message "
                            "and the dead letter holds only its start")
        key = letter["key"].encode("utf-8") if isinstance(letter.get("key"), str) else None
        original = letter.get("original")
        value = original.encode("utf-8") if isinstance(original, str) else wire.dumps(original)
        found, detail = (key, value), "from the dead letter's copy"
    else:
        detail = f"exact bytes from {letter['topic']}[{letter['partition']}]@{letter['offset']}"
    await (await producer.send(topic, key=found[0], value=found[1], headers=header))
    return Replayed(ident, stage, "published", topic, detail)


async def _replay_connector(
    settings: Settings,
    producer: AIOKafkaProducer,
    conn: asyncpg.Connection,
    letter: dict[str, Any],
    header: list[tuple[str, bytes]],
) -> Replayed:
    from connectors.base import check_source, encode, field_errors, load_studio, make_envelope

    ident = str(letter["id"])
    studio_id, source, payload = letter.get("studio_id"), letter.get("source"), letter.get("original")
    if letter.get("original_truncated"):
        return Replayed(ident, "connector", "skipped", detail="the dead letter holds only the start of the order")
    try:
        studio = await load_studio(conn, str(studio_id))
        envelope = make_envelope(studio, check_source(str(source)), payload, _received_at(letter))
    except ValidationError as exc:
        reason = f"breaks the {source} contract: " + "; ".join(
            f"{e['field']}: {e['error']}" for e in field_errors(exc)[:10]
        )
    except (LookupError, ValueError) as exc:
        reason = str(exc)
    else:
        key, value = encode(envelope)
        await (await producer.send(settings.raw_topic, key=key, value=value, headers=header))
        return Replayed(ident, "connector", "published", settings.raw_topic, "validated and wrapped again")
    key_text = letter.get("key")
    message = Incoming(None, None, None, key_text.encode() if isinstance(key_text, str) else None,
                       _dump(payload))
    again = deadletter.build(message, "connector", reason, studio_id=_str(studio_id), source=_str(source),
                             replay_of=ident)
    await deadletter.publish(producer, settings.deadletter_topic, [(message.key, again)])
    return Replayed(ident, "connector", "failed_again", settings.deadletter_topic, reason, again.id)


async def _mark_replayed(conn: asyncpg.Connection, result: Replayed) -> None:
    await conn.execute(
        """INSERT INTO dead_letter_resolutions (dead_letter_id, status, stage, replay_count, replayed_at)
           VALUES ($1, 'replayed', $2, 1, now())
           ON CONFLICT (dead_letter_id) DO UPDATE
              SET replay_count = dead_letter_resolutions.replay_count + 1, replayed_at = now(),
                  status = CASE WHEN dead_letter_resolutions.status = 'resolved'
                                THEN 'resolved' ELSE 'replayed' END""",
        result.id, result.stage,
    )


class _OriginalReader:
    """Reads one message back by topic, partition and offset (None when the broker no longer has it)."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=services.bootstrap_servers(settings),
            client_id=f"{settings.app_id}-dlq-replay-{uuid.uuid4().hex[:6]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def read(self, letter: dict[str, Any]) -> tuple[bytes | None, bytes] | None:
        topic, partition, offset = letter.get("topic"), letter.get("partition"), letter.get("offset")
        if not (isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int)):
            return None
        tp = TopicPartition(topic, partition)
        try:
            first = (await self._consumer.beginning_offsets([tp]))[tp]
            end = (await self._consumer.end_offsets([tp]))[tp]
        except Exception:  # the topic or partition is gone
            return None
        if not first <= offset < end:
            return None
        self._consumer.assign([tp])
        self._consumer.seek(tp, offset)
        for _ in range(20):
            batch = await self._consumer.getmany(tp, timeout_ms=500, max_records=1)
            for record in batch.get(tp, []):
                if record.offset != offset:
                    return None  # compacted away
                key_text = record.key.decode("utf-8", "replace")[: deadletter.MAX_KEY_CHARS] if record.key else None
                if record.value is None or key_text != letter.get("key"):
                    return None  # not the message this dead letter is about
                return record.key, record.value
        return None


def _received_at(letter: dict[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(str(letter.get("time")))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _dump(payload: Any) -> bytes:
    try:
        return wire.dumps(payload)
    except Exception:
        return repr(payload).encode("utf-8", "replace")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
