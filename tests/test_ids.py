"""Decision ids are UUIDv7: canonical text, unique, and increasing within a process."""

from __future__ import annotations

import time
import uuid

from guardrails.ids import DecisionIds


def test_ids_are_canonical_uuid7_unique_and_increasing() -> None:
    ids = DecisionIds()
    before_ms = time.time_ns() // 1_000_000
    made = [ids.new() for _ in range(20_000)]  # many share a millisecond: the counter orders them
    after_ms = time.time_ns() // 1_000_000
    assert made == sorted(made) and len(set(made)) == len(made)
    for text in made[:: len(made) // 100]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms + 5  # the timestamp is the time of making


def test_two_generators_do_not_collide() -> None:
    first, second = DecisionIds(), DecisionIds()
    assert not {first.new() for _ in range(1000)} & {second.new() for _ in range(1000)}
