"""A closed-loop HTTP load generator for when wrk is not installed: aiohttp on uvloop, in its own process.

    python benchmarks/pyload.py URL BODY_FILE CONNECTIONS SECONDS

Each of CONNECTIONS workers POSTs BODY_FILE over its own keep-alive connection, one request
after another, for SECONDS; prints one `BENCH {json}` line in the same shape as the wrk
script's. Far slower than wrk (Python parses every response), so it caps what it can measure.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp


async def _worker(session: aiohttp.ClientSession, url: str, body: bytes, until: float, latencies: list[float]) -> int:
    errors = 0
    while (start := time.perf_counter()) < until:
        try:
            async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
                await response.read()
                errors += not 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError):
            errors += 1
            continue
        latencies.append(time.perf_counter() - start)
    return errors


async def _run(url: str, body: bytes, connections: int, seconds: float) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=5)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        until = started + seconds
        errors = await asyncio.gather(*(_worker(session, url, body, until, latencies) for _ in range(connections)))
        duration = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6 if latencies else 0.0

    return {
        "requests": len(latencies),
        "duration_us": duration * 1e6,
        "p50_us": percentile(50),
        "p99_us": percentile(99),
        "errors": sum(errors),
    }


def main() -> int:
    url, body_file, connections, seconds = sys.argv[1:5]
    run = asyncio.run
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        pass
    result = run(_run(url, Path(body_file).read_bytes(), int(connections), float(seconds)))
    print("BENCH " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
