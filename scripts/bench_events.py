"""Load test of POST /v1/events beside the read path, and a kill -9 under load (acknowledged = stored).

1. ``recommender serve`` on an index (the bundled ECB+ sample, built once with the default model, unless
   ``--index`` names one), events rate limit off, ``--workers`` processes;
2. wrk: ``GET /v1/articles/{id}/related?k=5`` round-robin over the archive's ids, then ``POST /v1/events`` (a
   widget's beacon: one impression of five links and one click), each ``--seconds`` at ``--connections``;
3. a fresh server, ``--clients`` Python clients posting batches of ``--batch`` impressions with unique view ids for
   ``--seconds``, the server killed with SIGKILL half-way; then every acknowledged event is looked up in the store.

    .venv/bin/python scripts/bench_events.py --workers 2

Needs wrk (``apt-get install -y wrk``). Prints a markdown table for docs/benchmarks.md.
"""

# ruff: noqa: T201 - a script prints its report
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402 - scripts/bench.py, beside this one

from recommender.events.log import EventReader  # noqa: E402

SAMPLE = ROOT / "data" / "ecbplus-sample.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(index: Path, events: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "recommender.cli.app", "serve", "--index", str(index), "--port", str(port)]
    args += ["--workers", str(workers), "--events-dir", str(events), "--events-rate", "0", "--max-in-flight", "512"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)  # the workers too
    except ProcessLookupError:
        return
    proc.wait(30)


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, str]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = bench._wrk_row(out, 0, 1, connections, seconds)  # the one reader of wrk's report (scripts/bench.py)
    if isinstance(row, str):
        raise RuntimeError(row)
    requests, rps, p50, p99, errors = row[4:]
    return {"requests": requests, "rps": rps, "p50": f"{p50} ms", "p99": f"{p99} ms", "errors": errors}


READ_LUA = """
ids = {%s}
n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/articles/" .. ids[(n %% #ids) + 1] .. "/related?k=5")
end
"""

EVENTS_LUA = """
wrk.method = "POST"
wrk.path = "/v1/events"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
wrk.body = [[%s]]
"""


def beacon(ids: list[str]) -> str:
    """What the widget sends for one page view with a click: an impression of five links and the click."""
    base = {"story": ids[0], "version": "v", "view": "0123456789abcdef"}  # one body for all: wrk stays cheap
    impression = {"type": "impression", **base, "items": ids[1:6]}
    click = {"type": "click", **base, "target": ids[1], "position": 1}
    return json.dumps({"events": [impression, click]})


def durability(index: Path, events: Path, workers: int, clients: int, batch: int, seconds: float) -> dict[str, int]:
    proc, url = start_server(index, events, workers)
    stop = threading.Event()
    acked: list[list[str]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def load(n: int) -> None:
        sent = 0
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                views = [f"k{n}-{sent}-{i}" for i in range(batch)]
                sent += 1
                body = {"events": [{"type": "impression", "story": "x", "items": ["y"], "view": v} for v in views]}
                try:
                    if http.post(f"{url}/v1/events", content=json.dumps(body)).status_code == 200:
                        acked[n].extend(views)
                except httpx.HTTPError:
                    errors[n] += 1

    threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 2)
    kill(proc, signal.SIGKILL)
    time.sleep(seconds / 2)
    stop.set()
    for thread in threads:
        thread.join(10)
    stored = {str(r.get("view")) for r in EventReader(events)}
    promised = [v for views in acked for v in views]
    return {
        "acknowledged": len(promised),
        "stored": len(stored),
        "lost": sum(1 for v in promised if v not in stored),
        "client_errors": sum(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="an existing index (default: the bundled sample, built once)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    index = args.index
    if index is None:
        index = work / "index"
        subprocess.run(
            [sys.executable, "-m", "recommender.cli.app", "build", str(SAMPLE), "--index", str(index)], check=True
        )
    from recommender.storage.catalog import Catalog

    catalog = Catalog(index / Catalog.FILENAME, read_only=True)
    ids = [str(r[0]) for r in catalog.conn.execute("SELECT id FROM articles ORDER BY key")]
    catalog.close()
    (work / "read.lua").write_text(READ_LUA % ", ".join(json.dumps(i) for i in ids))
    (work / "events.lua").write_text(EVENTS_LUA % beacon(ids))
    proc, url = start_server(index, work / "events-wrk", args.workers)
    try:
        for warm in ("read.lua", "events.lua"):
            wrk(url, work / warm, 3, args.connections)
        read = wrk(url, work / "read.lua", args.seconds, args.connections)
        post = wrk(url, work / "events.lua", args.seconds, args.connections)
    finally:
        kill(proc)
    stored = sum(1 for _ in EventReader(work / "events-wrk"))
    crash = durability(index, work / "events-kill", args.workers, args.clients, args.batch, args.seconds)
    print(f"{len(ids)} articles, {args.workers} worker(s), wrk -t2 -c{args.connections} -d{args.seconds}s")
    print("| request | requests | requests/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|---|")
    for name, row in (("GET related (k=5)", read), ("POST /v1/events (2 events)", post)):
        print(f"| {name} | {row['requests']} | {row['rps']} | {row['p50']} | {row['p99']} | {row['errors']} |")
    print(f"events stored by the wrk run (2 per request, warm-up included): {stored:,}")
    print(
        f"kill -9 half-way through {args.seconds}s of {args.clients} clients x {args.batch} events: "
        f"{crash['acknowledged']:,} acknowledged, {crash['stored']:,} stored, {crash['lost']} lost "
        f"({crash['client_errors']} requests failed after the kill)"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0 if crash["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
