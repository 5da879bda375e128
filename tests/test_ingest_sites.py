"""A site that has only a website, served on 127.0.0.1 (never the internet): sitemaps (index, gzip, Google
News), URL lists, robots.txt, retries, resumable fetches, WordPress REST over HTTP, ``watch`` and a SOURCE URL
that does not answer. Pages are modelled on real ones (a dated news page, a Business Standard-style page with
JSON-LD in IST, a DW-style page whose only date is in its title beside sidebar dates)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender.cli.app import app
from recommender.ingest import FetchSettings, IngestOptions, read_source
from recommender.ingest.records import Record
from recommender.recommender import Recommender
from recommender.storage.catalog import Catalog
from recommender.watch import RoundResult, parse_interval, watch
from tests.fakes import FAKE_MODEL, FakeEmbedder
from tests.servers import ScriptedSite, free_port

runner = CliRunner()
MARKUP = re.compile(r"<[a-zA-Z/!][^>]*>|&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)


def page(
    title: str,
    paragraphs: list[str],
    *,
    head: str = "",
    lang: str = "en",
    sidebar: str = "",
) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>{head}</head>
<body><header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/subscribe">Subscribe</a></nav></header>
<main><article><h1>{title.split(" | ")[0]}</h1>{body}</article></main>
<aside class="related">{sidebar}</aside><footer>&copy; 2024 Publisher. Cookie settings.</footer></body></html>"""


LEAD = (
    "The temporary flood barriers along the Old Quay held overnight as the river crested at 7.2 metres, the "
    "city's emergency office said on Wednesday, while residents of the lower town were told to keep away."
)
MORE = (
    "Engineers will inspect the barriers again on Thursday morning. The deputy mayor said the city had learnt "
    "from the floods of 2013 and that the new pumps had worked as planned throughout the night."
)


def dated_page() -> str:
    head = (
        '<meta property="og:site_name" content="Riverside Gazette">'
        '<meta property="og:title" content="Flood barriers hold as river crests | Riverside Gazette">'
        '<meta property="article:published_time" content="2026-06-12T18:11:51+03:00">'
        '<meta property="article:section" content="Local">'
        '<meta property="article:tag" content="Flood, River &amp; Harbour, flood">'
        '<link rel="canonical" href="/local/flood-barriers-hold?utm_source=sitemap&amp;fbclid=x">'
    )
    sidebar = '<time datetime="2019-01-01T00:00:00Z">1 Jan 2019</time> An older story'
    title = "Flood barriers hold as river crests | Riverside Gazette"
    return page(title, [LEAD, MORE], head=head, lang="en-GB", sidebar=sidebar)


def business_standard_page() -> str:
    ld = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "name": "Business Standard"},
            {"@type": "NewsArticle", "headline": "Markets rally", "datePublished": "2026-06-12T13:39:00+05:30"},
        ],
    }
    head = (
        '<meta property="og:site_name" content="Business Standard">'
        '<meta property="og:locale" content="en_IN">'
        f'<script type="application/ld+json">{json.dumps(ld)}</script>'
    )
    sidebar = '<time datetime="2019-05-05T10:00:00+05:30">May 5, 2019</time> Top story'
    paragraphs = [
        "Indian equity benchmarks rallied on Friday as banking stocks gained after the central bank left rates "
        "unchanged and signalled comfort with the liquidity in the system.",
        "The Sensex closed 1.2 per cent higher, led by gains in lenders and information technology companies.",
    ]
    return page("Markets rally as banks gain | Business Standard", paragraphs, head=head, lang="", sidebar=sidebar)


def dw_page() -> str:
    head = (
        '<meta property="og:site_name" content="DW.COM">'
        '<meta property="og:title" content="Uncork the mystery of Germany&#39;s Fr&uuml;hburgunder | DW | 10.06.2013">'
    )
    sidebar = (
        '<div class="news"><h2>Sour grapes <span class="date">01.08.2019</span></h2></div>'
        '<div class="news"><h2>Wine festival <span class="date">19.07.2019</span></h2></div>'
    )
    paragraphs = [
        "Germany's red wine grape Frühburgunder is rare and fickle, but winemakers in the Ahr valley swear by it "
        "and are planting more of it every year, despite the small harvests it gives.",
        "Connoisseurs prize its soft tannins and cherry aromas; only a few hundred hectares are planted.",
    ]
    return page(
        "Uncork the mystery of Germany's Frühburgunder | Culture | DW | 10.06.2013",
        paragraphs,
        head=head,
        sidebar=sidebar,
    )


SITEMAP_INDEX = """<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{base}/sitemap-news.xml</loc></sitemap>
<sitemap><loc>{base}/sitemap-archive.xml.gz</loc></sitemap>
</sitemapindex>"""

NEWS_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>{base}/local/flood-barriers-hold</loc><lastmod>2026-06-12T16:00:00+00:00</lastmod></url>
<url><loc>{base}/markets/rally</loc><lastmod>2026-06-12T09:00:00+00:00</lastmod>
  <news:news><news:publication><news:name>Business Standard</news:name>
  <news:language>en</news:language></news:publication>
  <news:publication_date>2026-06-12T13:39:00+05:30</news:publication_date>
  <news:title>Markets rally as banks gain &amp;amp; rupee firms</news:title></news:news></url>
<url><loc>{base}/private/draft</loc><lastmod>2026-06-12T09:00:00+00:00</lastmod></url>
<url><loc>{base}/gone</loc><lastmod>2026-06-12T09:00:00+00:00</lastmod></url>
<url><loc>https://elsewhere.example/story</loc></url>
</urlset>"""

ARCHIVE_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>{base}/culture/fruehburgunder</loc><lastmod>2013-06-10</lastmod></url>
</urlset>"""


@pytest.fixture
def site() -> ScriptedSite:
    with ScriptedSite() as s:
        base = s.url
        s.xml("/sitemap.xml", SITEMAP_INDEX.format(base=base))
        s.xml("/sitemap-news.xml", NEWS_SITEMAP.format(base=base))
        s.routes["/sitemap-archive.xml.gz"] = (
            200,
            "application/gzip",
            gzip.compress(ARCHIVE_SITEMAP.format(base=base).encode()),
        )
        s.routes["/robots.txt"] = (200, "text/plain", b"User-agent: *\nDisallow: /private/\n")
        s.page("/local/flood-barriers-hold", dated_page())
        s.page("/markets/rally", business_standard_page())
        s.page("/culture/fruehburgunder", dw_page())
        s.page("/private/draft", page("Secret", ["Not for indexing. " * 10]))
        yield s


def run(*args: object) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def stored(index_dir: Path) -> dict[str, object]:
    catalog = Catalog(index_dir / "catalog.sqlite")
    try:
        return {s.article.id: s.article for s in catalog.iter_articles()}
    finally:
        catalog.close()


def test_build_from_a_sitemap_served_over_http(tmp_path: Path, fake: FakeEmbedder, site: ScriptedSite) -> None:
    index_dir = tmp_path / "index"
    result = run("build", f"{site.url}/sitemap.xml", "--index", index_dir, "--model", FAKE_MODEL)
    assert result.exit_code == 3, result.output  # done, with the pages that failed listed
    assert result.stdout.startswith("3 added, 0 updated, 0 skipped, 3 rejected")
    failures = sorted(line for line in result.stderr.splitlines() if line.startswith("rejected:"))
    assert failures == [
        f"rejected: {site.url}/gone: HTTP 404",
        f"rejected: {site.url}/private/draft: disallowed by robots.txt",
        f"rejected: https://elsewhere.example/story: not on the site of {site.url}/sitemap.xml; not fetched",
    ]
    assert site.hits.get("/private/draft") is None  # robots.txt obeyed: never asked for
    assert all(agent.startswith("recommender/") for agent in site.agents)
    articles = stored(index_dir)
    flood = articles[f"{site.url}/local/flood-barriers-hold"]
    markets = articles[f"{site.url}/markets/rally"]
    wine = articles[f"{site.url}/culture/fruehburgunder"]
    for article in (flood, markets, wine):
        assert not MARKUP.search(article.title) and not MARKUP.search(article.body), article
        assert article.url.startswith(site.url) and "utm_" not in article.url and "fbclid" not in article.url
        assert "Subscribe" not in article.body and "Cookie" not in article.body
    # the canonical URL (relative, with trackers) resolved and cleaned; the page's own time with its zone
    assert flood.url == f"{site.url}/local/flood-barriers-hold"
    assert flood.title == "Flood barriers hold as river crests" and flood.language == "en"
    assert flood.published_at == "2026-06-12T15:11:51+00:00"
    assert flood.metadata["published_at_source"] == "meta article:published_time"
    assert flood.tags == ("Flood", "River & Harbour") and flood.section == "Local"
    assert flood.metadata["sitemap_lastmod"] == "2026-06-12T16:00:00+00:00"
    # JSON-LD in IST, not the sidebar's 2019 <time>; the Google News title
    assert markets.published_at == "2026-06-12T08:09:00+00:00"
    assert markets.metadata["published_at_source"] == "json-ld datePublished"
    assert markets.title == "Markets rally as banks gain & rupee firms" and markets.language == "en"
    # no structured date: the one beside the site's name in the title, not a sidebar's 2019
    assert wine.title == "Uncork the mystery of Germany's Frühburgunder"
    assert wine.published_at == "2013-06-10T00:00:00+00:00" and wine.metadata["published_at_source"] == "title"


def test_a_second_run_fetches_only_pages_whose_lastmod_changed(
    tmp_path: Path, fake: FakeEmbedder, site: ScriptedSite
) -> None:
    index_dir = tmp_path / "index"
    sitemap = f"{site.url}/sitemap.xml"
    run("build", sitemap, "--index", index_dir, "--model", FAKE_MODEL)
    before = dict(site.hits)
    again = run("build", sitemap, "--index", index_dir, "--model", FAKE_MODEL)
    assert again.stdout.startswith("0 added, 0 updated, 3 skipped"), again.output
    for path in ("/local/flood-barriers-hold", "/markets/rally", "/culture/fruehburgunder"):
        assert site.hits[path] == before[path]  # not fetched again
    assert site.hits["/gone"] == before["/gone"] + 1  # a failed page is tried again
    site.xml("/sitemap-news.xml", NEWS_SITEMAP.format(base=site.url).replace("2026-06-12T16:00", "2026-06-12T17:00"))
    site.page("/local/flood-barriers-hold", dated_page().replace("held overnight", "held through the night"))
    third = run("add", sitemap, "--index", index_dir)
    assert third.stdout.startswith("0 added, 1 updated, 2 skipped"), third.output
    assert site.hits["/local/flood-barriers-hold"] == before["/local/flood-barriers-hold"] + 1


def test_pages_are_retried_and_failures_name_the_url(tmp_path: Path, fake: FakeEmbedder, site: ScriptedSite) -> None:
    site.fail_first["/markets/rally"] = 1  # one 503, then the page
    site.routes["/gone"] = (500, "text/plain", b"boom")
    options = IngestOptions(fetch=FetchSettings(retries=1, backoff=0.01, timeout=2))
    items = list(read_source(f"{site.url}/sitemap-news.xml", options))
    ids = [i.article.id for i in items if isinstance(i, Record)]
    assert f"{site.url}/markets/rally" in ids
    failed = {str(i) for i in items if not isinstance(i, Record)}
    assert any(f.startswith(f"{site.url}/gone: ") and "500" in f and "2 tries" in f for f in failed), failed


def test_a_list_of_urls_from_a_file_and_over_http(tmp_path: Path, fake: FakeEmbedder, site: ScriptedSite) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(
        f"# stories to index\n{site.url}/local/flood-barriers-hold\n\n{site.url}/markets/rally\n", encoding="utf-8"
    )
    index_dir = tmp_path / "index"
    result = run("build", urls, "--index", index_dir, "--model", FAKE_MODEL)
    assert result.exit_code == 0 and result.stdout.startswith("2 added"), result.output
    site.routes["/urls.txt"] = (200, "text/plain", f"{site.url}/culture/fruehburgunder\n".encode())
    result = run("add", f"{site.url}/urls.txt", "--index", index_dir)
    assert result.exit_code == 0 and result.stdout.startswith("1 added"), result.output
    assert len(stored(index_dir)) == 3


def test_wordpress_rest_listing_over_http_follows_its_pages(
    tmp_path: Path, fake: FakeEmbedder, site: ScriptedSite
) -> None:
    posts = json.loads((Path(__file__).parent / "fixtures" / "ingest" / "wp-rest-posts.json").read_text("utf-8"))
    site.routes["/wp-json/wp/v2/posts"] = (200, "application/json", json.dumps(posts[:1]).encode())
    site.routes["/wp-json/wp/v2/posts?page=2"] = (200, "application/json", json.dumps(posts[1:]).encode())
    site.routes["/wp-json/wp/v2/posts?page=3"] = (400, "application/json", b'{"code":"rest_post_invalid_page_number"}')
    index_dir = tmp_path / "index"
    result = run("build", f"{site.url}/wp-json/wp/v2/posts", "--index", index_dir, "--model", FAKE_MODEL)
    assert result.exit_code == 0 and result.stdout.startswith("2 added"), result.output
    assert set(stored(index_dir)) == {"1042", "1050"}


FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Riverside Gazette</title><link>{base}/</link><language>en</language>
{items}
</channel></rss>"""
ITEM = """<item><guid>{base}/{slug}</guid><title>{title}</title><link>/{slug}?utm_source=rss</link>
<description><![CDATA[<p>{body}</p>]]></description><pubDate>{date}</pubDate></item>"""


def feed(base: str, *stories: tuple[str, str, str, str]) -> str:
    items = "\n".join(ITEM.format(base=base, slug=s, title=t, body=b, date=d) for s, t, b, d in stories)
    return FEED.format(base=base, items=items)


OLD = (
    "flood-barriers",
    "Flood barriers hold on the Old Quay",
    "Flood barriers along the Old Quay held as the river crested; residents of the lower town evacuated.",
    "Wed, 12 Jun 2024 15:11:51 +0000",
)
NEW = (
    "flood-pumps",
    "New pumps keep the Old Quay dry as the flood recedes",
    "The flood receded from the Old Quay; new pumps and barriers kept the lower town dry, residents returned.",
    "Thu, 13 Jun 2024 08:00:00 +0200",
)
OTHER = (
    "budget",
    "Council approves bridge budget",
    "The council approved the bridge budget.",
    "Thu, 13 Jun 2024 09:00:00 +0000",
)


def test_watch_adds_new_stories_each_round_and_survives_failures(
    tmp_path: Path, fake: FakeEmbedder, site: ScriptedSite
) -> None:
    site.xml("/feed.xml", feed(site.url, OLD, OTHER))
    index_dir = tmp_path / "index"
    results: list[RoundResult] = []
    script = iter(["down", "publish"])

    def between_rounds(seconds: float) -> None:
        assert seconds <= 300
        step = next(script)
        site.down = step == "down"
        if step == "publish":
            site.xml("/feed.xml", feed(site.url, NEW, OLD, OTHER))

    done = watch(
        index_dir,
        [f"{site.url}/feed.xml"],
        every=300,
        rounds=3,
        on_result=results.append,
        sleep=between_rounds,
        model=FAKE_MODEL,
        ingest=IngestOptions(fetch=FetchSettings(retries=0, timeout=2)),
    )
    assert done == 3
    first, failed, third = results
    assert first.report is not None and first.report.added == 2
    assert failed.report is None and failed.error and "does not answer" in failed.error  # survived, went on
    assert third.report is not None and (third.report.added, third.report.skipped) == (1, 2)
    new_id, old_id = f"{site.url}/flood-pumps", f"{site.url}/flood-barriers"
    with Recommender.open(index_dir) as rec:
        assert rec.store.catalog.get(new_id).article.url == f"{site.url}/flood-pumps"
        # the new story is in its older neighbour's stored list at once
        assert new_id in [s.id for s in rec.related(old_id, k=5)]


def test_watch_command_runs_rounds(tmp_path: Path, fake: FakeEmbedder, site: ScriptedSite) -> None:
    site.xml("/feed.xml", feed(site.url, OLD, OTHER))
    index_dir = tmp_path / "index"
    result = run(
        "watch", f"{site.url}/feed.xml", "--every", "1s", "--rounds", "2", "--index", index_dir, "--model", FAKE_MODEL
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"round 1: {site.url}/feed.xml: " + lines[0].split(": ", 2)[2]
    assert "2 added" in lines[0] and "0 added, 0 updated, 2 skipped" in lines[1]
    assert lines[-1] == "watched 1 source(s) for 2 round(s)"
    assert run("watch", "x.xml", "--every", "soon").exit_code == 2


def test_parse_interval() -> None:
    assert [parse_interval(x) for x in ("30s", "5m", "1h", "90", "1.5m")] == [30, 300, 3600, 90, 90]
    with pytest.raises(ValueError):
        parse_interval("0s")


def test_a_source_url_that_does_not_answer_creates_nothing(tmp_path: Path, fake: FakeEmbedder) -> None:
    dead = f"http://127.0.0.1:{free_port()}/sitemap.xml"
    index_dir = tmp_path / "index"
    result = run("build", dead, "--index", index_dir, "--model", FAKE_MODEL)
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {dead}: does not answer"), result.output
    assert not index_dir.exists()
    result = run("add", dead, "--index", index_dir)
    assert result.exit_code == 1 and "does not answer" in result.stderr and not index_dir.exists()


@pytest.mark.parametrize("command", ["build", "add"])
def test_a_missing_source_file_creates_nothing(tmp_path: Path, fake: FakeEmbedder, command: str) -> None:
    index_dir = tmp_path / "index"
    model = ["--model", FAKE_MODEL] if command == "build" else []
    result = run(command, tmp_path / "missing.jsonl", "--index", index_dir, *model)
    assert result.exit_code == 1 and "no such file or folder" in result.stderr
    assert not index_dir.exists()


def test_a_home_page_url_reads_the_sitemaps_robots_txt_lists(fake: FakeEmbedder, site: ScriptedSite) -> None:
    site.routes["/robots.txt"] = (
        200,
        "text/plain",
        f"User-agent: *\nDisallow: /private/\nSitemap: {site.url}/sitemap-archive.xml.gz\n".encode(),
    )
    site.page("/", page("Riverside Gazette", ["Front page teaser one. " * 5, "Front page teaser two. " * 5]))
    items = list(read_source(f"{site.url}/", IngestOptions(fetch=FetchSettings(retries=0))))
    assert [i.article.id for i in items if isinstance(i, Record)] == [f"{site.url}/culture/fruehburgunder"]
