"""Acknowledged means stored: events posted under load to a real `recommender serve`, which is then killed with
SIGKILL mid-load; every event the server answered 200 for is in the store afterwards (fake embedder).

The short variant runs by default; ``-m slow`` runs the long one. ``scripts/bench_events.py`` measures the same
with more clients and records throughput (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from recommender.events.log import EventReader
from tests.fakes import FakeEmbedder
from tests.servers import ApiServer

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`


def _load(url: str, stop: threading.Event, acked: list[str], failures: list[str], name: str) -> None:
    n = 0
    with httpx.Client(timeout=5) as http:
        while not stop.is_set():
            views = [f"{name}-{n}-{i}" for i in range(3)]
            n += 1
            events = [{"type": "impression", "story": "a1", "items": ["a2", "a3"], "view": v} for v in views]
            try:
                response = http.post(f"{url}/v1/events", content=json.dumps({"events": events}))
            except httpx.HTTPError as exc:  # the server is gone: whatever was not answered is not promised
                failures.append(type(exc).__name__)
                continue
            if response.status_code == 200:
                acked.extend(views)


@pytest.mark.parametrize(
    "seconds", [pytest.param(1.5, id="short"), pytest.param(8.0, id="long", marks=pytest.mark.slow)]
)
def test_no_acknowledged_event_is_lost_to_kill_9(fake_index: Path, fake: FakeEmbedder, seconds: float) -> None:
    server = ApiServer(fake_index, "--events-rate", "0").start()
    stop = threading.Event()
    acked: list[str] = []
    failures: list[str] = []
    clients = [
        threading.Thread(target=_load, args=(server.url, stop, acked, failures, f"c{n}"), daemon=True) for n in range(4)
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(seconds)
        server.stop(signal.SIGKILL)  # mid-load: some requests are in flight
        time.sleep(0.3)
    finally:
        stop.set()
        for client in clients:
            client.join(10)
        server.stop()
    stored = {str(record.get("view")) for record in EventReader(fake_index / "events")}
    lost = [view for view in acked if view not in stored]
    print(f"acknowledged {len(acked)} events, stored {len(stored)}, lost {len(lost)}, client errors {len(failures)}")
    assert len(acked) > 100  # the load really ran
    assert lost == []
    assert failures  # and the kill really happened under load
