"""Decision ids: UUIDv7 (RFC 9562), unique and sortable by time.

An edge module: it reads the clock and the OS's randomness. Within one millisecond a
counter in the random bits keeps the ids of one process increasing. The random bits come
from a generator seeded once from the OS (ids must be unique, not secret): one system
call per id was a measurable share of a request.
"""

from __future__ import annotations

import os
import random
import threading
import time


class DecisionIds:
    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def new(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                now_ms = self._last_ms
                self._counter += 1
            else:
                self._last_ms = now_ms
                self._counter = self._random.getrandbits(10)
            if self._counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                self._last_ms = now_ms = now_ms + 1
                self._counter = 0
            counter = self._counter
            tail = self._random.getrandbits(62)
        value = (now_ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail
        digits = f"{value:032x}"  # the canonical 8-4-4-4-12 form, without building a uuid.UUID
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
