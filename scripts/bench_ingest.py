# ruff: noqa: T201 - a script that prints its report
"""Ingest throughput: articles/s from a WordPress WXR export, pages/s fetched and extracted from a local HTTP
server, and the language detector's articles/s (docs/benchmarks.md has the figures and this command).

    .venv/bin/python scripts/bench_ingest.py [--articles 5000] [--pages ../shared/data/real-pages]

Reading only: nothing is embedded (embedding speed is in scripts/bench.py). The WXR file is made from the
bundled ECB+ sample, repeated to ``--articles`` posts and wrapped in WordPress block markup; the site is the
saved real pages served by ``http.server`` on 127.0.0.1 with a sitemap listing them.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender.ingest import FetchSettings, IngestOptions, read_source  # noqa: E402
from recommender.ingest.language import detect_language  # noqa: E402
from recommender.ingest.records import Record  # noqa: E402

SAMPLE = ROOT / "data" / "ecbplus-sample.jsonl"


def make_wxr(path: Path, count: int) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]
    items = []
    for n in range(count):
        row = rows[n % len(rows)]
        body = "".join(
            f"<!-- wp:paragraph --><p>{html.escape(p)} &#8211; <strong>{n}</strong></p><!-- /wp:paragraph -->"
            for p in (row.get("body") or row.get("title", "")).split(". ")
        )
        items.append(
            f"<item><title><![CDATA[{row.get('title', '')[:120]} &#8211; {n}]]></title>"
            f"<link>https://site.example/{n}/?utm_source=x</link>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded><wp:post_id>{n + 1}</wp:post_id>"
            f"<wp:post_date_gmt><![CDATA[2024-06-12 15:11:51]]></wp:post_date_gmt><wp:status>publish</wp:status>"
            f'<wp:post_type>post</wp:post_type><category domain="category"><![CDATA[News]]></category></item>'
        )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/'
        'content/" xmlns:wp="http://wordpress.org/export/1.2/"><channel><title>Bench</title>'
        "<link>https://site.example</link><language>en-US</language>" + "".join(items) + "</channel></rss>",
        encoding="utf-8",
    )


def bench_wxr(count: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.xml"
        make_wxr(path, count)
        started = time.perf_counter()
        read = sum(isinstance(item, Record) for item in read_source(path))
        return read, time.perf_counter() - started


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def bench_pages(folder: Path, concurrency: int) -> tuple[int, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        names = sorted(p.name for p in folder.glob("*.html"))
        for name in names:
            (site / name).write_bytes((folder / name).read_bytes())
        handler = functools.partial(_Quiet, directory=str(site))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        urls = "".join(f"<url><loc>{base}/{name}</loc></url>" for name in names)
        (site / "sitemap.xml").write_text(
            f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>',
            encoding="utf-8",
        )
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            options = IngestOptions(fetch=FetchSettings(concurrency=concurrency))
            started = time.perf_counter()
            items = list(read_source(f"{base}/sitemap.xml", options))
            seconds = time.perf_counter() - started
        finally:
            httpd.shutdown()
            httpd.server_close()
        return len(items), sum(isinstance(i, Record) for i in items), seconds


def bench_language(count: int) -> tuple[int, float]:
    rows = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]
    texts = [f"{r.get('title', '')}. {r.get('body', '')}" for r in rows]
    detect_language("warm up the model once")
    started = time.perf_counter()
    for n in range(count):
        detect_language(texts[n % len(texts)])
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=5000, help="posts in the WXR file")
    parser.add_argument("--pages", type=Path, default=ROOT.parent / "shared" / "data" / "real-pages")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    read, seconds = bench_wxr(args.articles)
    print(f"wxr       {read} articles in {seconds:.1f}s: {read / seconds:,.0f} articles/s")
    count, seconds = bench_language(args.articles)
    print(f"language  {count} detections in {seconds:.1f}s: {count / seconds:,.0f} articles/s")
    if args.pages.is_dir():
        total, good, seconds = bench_pages(args.pages, args.concurrency)
        print(
            f"sitemap   {total} pages ({good} articles) in {seconds:.1f}s with concurrency {args.concurrency}: "
            f"{total / seconds:,.1f} pages/s"
        )
    else:
        print(f"sitemap   skipped: no folder of saved pages at {args.pages}")


if __name__ == "__main__":
    main()
