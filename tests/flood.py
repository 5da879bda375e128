"""A client that floods a server with uncacheable reads for a while, then prints what it got as JSON.

``python tests/flood.py URL ID SECONDS CONCURRENCY``: GETs of ``/v1/articles/ID/related`` with k beyond the stored
lists and a unique filter each time (so no cache and no stored list can answer: every one is a live search),
on CONCURRENCY kept-alive connections. Plain asyncio streams, not an HTTP library: the flood must cost the
(shared) machine as little as possible. Run as its own process, so it does not share a GIL with the client
being measured.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from urllib.parse import urlsplit


async def flood(url: str, article: str, seconds: float, concurrency: int) -> dict[str, object]:
    statuses: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                path = f"/v1/articles/{article}/related?k=40&exclude=flood-{next(counter)}"
                writer.write(f"GET {path} HTTP/1.1\r\nHost: flood\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1].decode()
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                statuses[status] += 1
                if b"connection: close" in head.lower():
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        except (OSError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    return {"requests": sum(statuses.values()), "statuses": dict(statuses)}


if __name__ == "__main__":
    target, article, duration, workers = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(flood(target, article, duration, workers))))
