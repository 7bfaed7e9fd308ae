"""Decision ids: UUIDv7 (RFC 9562), unique and sortable by time.

An edge module: it reads the clock and the OS's randomness. Within one millisecond a
counter in the random bits keeps the ids of one process increasing.
"""

from __future__ import annotations

import os
import threading
import time
import uuid


class DecisionIds:
    def __init__(self) -> None:
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
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            if self._counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                self._last_ms = now_ms = now_ms + 1
                self._counter = 0
            counter = self._counter
        tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (now_ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail
        return str(uuid.UUID(int=value))
