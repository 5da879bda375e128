"""Readers on realistic CMS exports and feeds: clean text, full timestamps with zones, absolute clean URLs, tags
as lists, the language recorded (fixtures in tests/fixtures/ingest, modelled on real WordPress/Drupal exports)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recommender.articles import Article, clean_url, normalise_language, strip_tracking
from recommender.errors import InvalidArticle, SourceError
from recommender.ingest import IngestOptions, parse_field_map, parse_timezone, read_source
from recommender.ingest.records import Record
from recommender.ingest.sources import detect_format

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
MARKUP = re.compile(r"<[a-zA-Z/!][^>]*>|&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)


def read(path: Path, options: IngestOptions | None = None) -> tuple[list[Article], list[InvalidArticle]]:
    items = list(read_source(path, options))
    return [i.article for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, InvalidArticle)]


def assert_clean(article: Article) -> None:
    """The "Done when" of the ingest issue, for one article."""
    assert not MARKUP.search(article.title), article.title
    assert not MARKUP.search(article.body), article.body
    assert article.published_at and article.published_at.endswith("+00:00")
    if article.url is not None:
        assert article.url.startswith(("http://", "https://")), article.url
        assert "utm_" not in article.url and "fbclid" not in article.url


def test_wordpress_wxr_export_reads_published_posts_only() -> None:
    src = FIXTURES / "wordpress-export.xml"
    assert detect_format(src) == "wxr"
    good, bad = read(src)
    assert not bad
    assert [a.id for a in good] == ["1042", "1050"]  # the draft, the page and the attachment are left out
    flood, bridge = good
    for article in good:
        assert_clean(article)
    assert flood.title == "Flood barriers hold as river crests \u2013 for now"
    assert flood.body.startswith("The temporary flood barriers along the Old Quay held overnight as the river")
    assert "city\u2019s emergency office" in flood.body and "embankment & to follow" in flood.body
    assert "\n\n" in flood.body  # paragraphs kept apart
    assert flood.url == "https://gazette.example/2024/06/12/flood-barriers-hold/"
    assert flood.published_at == "2024-06-12T15:11:51+00:00"  # post_date_gmt, not the site-local post_date
    assert flood.metadata["published_at_source"] == "wordpress post_date_gmt"
    assert flood.section == "Local" and flood.tags == ("Flood", "River & Harbour")
    assert flood.language == "en"  # the channel's <language>en-US</language>
    assert bridge.title == "Council approves new bridge budget" and "\u20ac14\u00a0million" not in bridge.body
    assert "\u20ac14 million" in bridge.body


def test_wordpress_rest_json_page() -> None:
    good, bad = read(FIXTURES / "wp-rest-posts.json")
    assert not bad
    flood, bridge = good
    for article in good:
        assert_clean(article)
    assert flood.id == "1042" and flood.title == "Flood barriers hold as river crests \u2013 for now"
    assert flood.url == "https://gazette.example/2024/06/12/flood-barriers-hold/"
    assert flood.published_at == "2024-06-12T15:11:51+00:00"
    assert flood.section == "Local" and flood.tags == ("Flood", "River & Harbour")  # names from _embedded
    assert flood.language == "en" and flood.metadata["author"] == "Maria Hoffmann"
    assert bridge.section == "city politics"  # no _embedded: the category slug from class_list


def test_wordpress_rest_skips_drafts(tmp_path: Path) -> None:
    posts = json.loads((FIXTURES / "wp-rest-posts.json").read_text(encoding="utf-8"))
    posts[1]["status"] = "draft"
    src = tmp_path / "posts.json"
    src.write_text(json.dumps(posts), encoding="utf-8")
    good, _ = read(src)
    assert [a.id for a in good] == ["1042"]


def test_wordpress_csv_with_semicolons_id_column_and_local_dates() -> None:
    good, bad = read(FIXTURES / "wp_posts.csv", IngestOptions(timezone=parse_timezone("Europe/Berlin")))
    assert not bad
    assert [a.id for a in good] == ["1042", "1050"]  # the revision and the draft are not stories
    flood, bridge = good
    for article in good:
        assert_clean(article)
    assert flood.title == "Flood barriers hold as river crests \u2013 for now"
    assert flood.published_at == "2024-06-12T15:11:51+00:00"  # post_date_gmt: UTC whatever --timezone says
    assert flood.tags == ("Flood", "River & Harbour")  # split, unescaped, the repeat dropped
    assert flood.url == "https://gazette.example/?p=1042"  # guid, tracking parameter gone
    # no post_date_gmt: the site-local post_date in --timezone (09:30 in Berlin is 07:30 UTC)
    assert bridge.published_at == "2024-06-13T07:30:00+00:00"
    assert bridge.metadata["published_at_source"] == "post_date"


def test_csv_with_map_pipe_delimiter_epoch_dates_and_base_url() -> None:
    options = IngestOptions(
        field_map=parse_field_map(["node_title=title", "field_url=url"]), base_url="https://zeitung.example"
    )
    good, bad = read(FIXTURES / "drupal-nodes.csv", options)
    assert not bad
    first, second = good
    for article in good:
        assert_clean(article)
    assert first.id == "7" and first.title == "Hochwasser: Pegel sinkt langsam"
    assert first.url == "https://zeitung.example/lokales/hochwasser-pegel-sinkt"
    assert first.published_at == "2024-06-12T15:00:00+00:00"  # Unix seconds in Drupal's `created`
    assert first.section == "Lokales" and first.language == "de" and second.language == "de"  # de-AT -> de


def test_csv_map_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not an article field"):
        parse_field_map(["nid=identifier"])
    with pytest.raises(SourceError, match="expected SOURCE_COLUMN=field"):
        parse_field_map(["nid"])
    src = tmp_path / "a.csv"
    src.write_text("nid,heading\n1,Hello\n", encoding="utf-8")
    with pytest.raises(SourceError, match="no column 'node_id'"):
        read(src, IngestOptions(field_map={"node_id": "id"}))


def test_csv_without_any_id_column_names_the_fix(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text("headline;text\nA;B\n", encoding="utf-8")
    good, bad = read(src)
    assert not good and "no 'id' column" in bad[0].reason and "--map COLUMN=id" in bad[0].reason


RSS_WITH_MARKUP = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>The Guardian</title><link>https://www.theguardian.com/uk</link>
<language>en-gb</language>
<item><title><![CDATA[Tom & Jerry <b>return</b>]]></title>
<link>/world/2023/apr/16/tom-and-jerry-return?utm_source=rss&amp;utm_medium=feed&amp;CMP=Share_iOSApp</link>
<guid isPermaLink="false">guardian-1</guid>
<description><![CDATA[<p>The cat &amp; mouse are back.</p>]]></description>
<category>Film &amp; TV</category><category>Film &amp; TV</category><category>Animation</category>
<pubDate>Sun, 16 Apr 2023 18:11:51 +0300</pubDate></item>
</channel></rss>"""

ATOM_HTML_TITLE = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de-DE"><title>Verkehr</title><id>urn:verkehr</id>
<link href="https://zeitung.example/verkehr/"/><updated>2024-03-04T10:00:00Z</updated>
<entry><id>urn:uuid:1</id><title type="html">Bahn &amp;amp; Flixbus</title>
<link href="fernbus/bahn-flixbus.html"/>
<published>2024-03-04T11:30:00+01:00</published>
<content type="html">&lt;p&gt;Bahn und Flixbus streiten &amp;uuml;ber Preise.&lt;/p&gt;</content></entry>
</feed>"""


def test_feed_titles_links_tags_dates_and_language(tmp_path: Path) -> None:
    src = tmp_path / "guardian.xml"
    src.write_text(RSS_WITH_MARKUP, encoding="utf-8")
    (article,), _ = read(src)
    assert article.title == "Tom & Jerry return" and article.body == "The cat & mouse are back."
    assert article.url == "https://www.theguardian.com/world/2023/apr/16/tom-and-jerry-return"
    assert article.published_at == "2023-04-16T15:11:51+00:00" and article.metadata["published_at_source"] == (
        "feed published"
    )
    assert article.tags == ("Film & TV", "Animation") and article.section == "Film & TV"
    assert article.language == "en"


def test_atom_html_title_relative_link_and_xml_lang(tmp_path: Path) -> None:
    src = tmp_path / "verkehr.atom"
    src.write_text(ATOM_HTML_TITLE, encoding="utf-8")
    (article,), _ = read(src)
    assert article.title == "Bahn & Flixbus"
    assert article.body == "Bahn und Flixbus streiten \u00fcber Preise."
    assert article.url == "https://zeitung.example/verkehr/fernbus/bahn-flixbus.html"
    assert article.published_at == "2024-03-04T10:30:00+00:00" and article.language == "de"


def test_jsonl_body_with_cms_markup_is_cleaned_and_cms_names_are_mapped(tmp_path: Path) -> None:
    src = tmp_path / "export.jsonl"
    row = {
        "ID": 17,
        "post_title": "It&#8217;s <em>here</em>",
        "post_content": "<!-- wp:paragraph --><p>Rain &amp; wind.</p><!-- /wp:paragraph -->",
        "published_at": "2026-06-12T18:11:51+03:00",
        "tags": "Weather, weather ,Storms",
        "language": "EN_gb",
    }
    src.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (article,), _ = read(src)
    assert (article.id, article.title, article.body) == ("17", "It\u2019s here", "Rain & wind.")
    assert article.published_at == "2026-06-12T15:11:51+00:00"  # the time and its zone kept
    assert article.tags == ("Weather", "Storms") and article.language == "en"


def test_naive_dates_take_the_timezone_option(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "1", "title": "t", "published_at": "2024-01-15 12:00"}\n', encoding="utf-8")
    (utc,), _ = read(src)
    (local,), _ = read(src, IngestOptions(timezone=parse_timezone("America/New_York")))
    assert utc.published_at == "2024-01-15T12:00:00+00:00" and local.published_at == "2024-01-15T17:00:00+00:00"
    with pytest.raises(SourceError, match="not a time zone"):
        parse_timezone("Mars/Olympus")


def test_language_detected_when_absent_and_not_when_declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "a.jsonl"
    german = "Der Gemeinderat hat am Mittwoch den Bau der neuen Brücke beschlossen, die Arbeiten beginnen im Herbst."
    rows = [{"id": "de", "title": "Neue Brücke", "body": german}, {"id": "fr", "body": german, "language": "fr-FR"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    good, _ = read(src)
    assert [a.language for a in good] == ["de", "fr"]  # the source's word wins over the text

    def no_detection(text: str) -> str:
        raise AssertionError("the detector ran although the source said the language")

    monkeypatch.setattr("recommender.ingest.language.detect_language", no_detection)
    src.write_text(json.dumps(rows[1]) + "\n", encoding="utf-8")
    (declared,), _ = read(src)
    assert declared.language == "fr"


def test_language_detector_function() -> None:
    from recommender.ingest import detect_language

    assert detect_language("The council approved the budget for the new bridge over the river on Wednesday.") == "en"
    assert detect_language("Le conseil municipal a approuvé mercredi le budget du nouveau pont sur la rivière.") == "fr"
    assert detect_language("Markets fall") is None  # too short to say: no guess stored


def test_url_cleaning_functions() -> None:
    assert strip_tracking("https://a.example/x?id=3&utm_source=rss&fbclid=1&gclid=2") == "https://a.example/x?id=3"
    assert strip_tracking("https://a.example/x?q=a%20b&page=2") == "https://a.example/x?q=a%20b&page=2"
    assert clean_url("/world/a?utm_medium=feed", "https://site.example/rss") == "https://site.example/world/a"
    assert clean_url("/world/a") == "/world/a"  # no base: stays site-relative
    assert normalise_language("en-US") == "en" and normalise_language("x-default") is None


def test_stored_url_never_keeps_tracking_parameters(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "1", "title": "t", "url": "https://s.example/p?utm_campaign=x&gclid=y"}\n', "utf-8")
    (article,), _ = read(src)
    assert article.url == "https://s.example/p"


def test_deferred_language_detection_gives_the_records_of_one_at_a_time(tmp_path: Path) -> None:
    """A build reads with ``defer_language`` and detects a batch at a time (:func:`with_languages`): the same
    records, in the same order, as detecting in :func:`to_record`, across batch ends and with rejections."""
    from recommender.ingest.records import with_languages
    from recommender.writer import read_batch

    german = "Der Gemeinderat hat am Mittwoch den Bau der neuen Brücke beschlossen, die Arbeiten beginnen im Herbst."
    english = "The council approved the budget for the new bridge over the river on Wednesday."
    rows = [
        {"id": "1", "title": "Neue Brücke", "body": german},
        {"id": "2", "body": german, "language": "fr-FR"},  # declared: not detected
        {"id": "3", "title": "Bridge", "body": english, "language": "x-default"},  # not a tag: detected
        {"id": "4", "title": "Markets fall"},  # too short to say
        {"id": ""},  # rejected
        {"id": "5", "title": "<p>Le conseil a approuvé le budget du nouveau pont sur la rivière.</p>"},
        {"id": "6", "body": english, "language": "zz-invalid-tag-that-is-not-one"},
    ]
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def shape(items: list[object]) -> list[object]:
        return [(i.location, i.article) if isinstance(i, Record) else repr(i) for i in items]

    one_at_a_time = shape(list(read_source(src)))
    deferred = list(read_source(src, IngestOptions(defer_language=True)))
    assert any(isinstance(i, Record) and i.language_text for i in deferred)
    for batch in (1, 2, 3, 100):
        assert shape(list(with_languages(deferred, batch))) == one_at_a_time
    assert shape(list(read_batch([src]))) == one_at_a_time
    languages = [i[1].language for i in one_at_a_time if isinstance(i, tuple)]
    assert languages == ["de", "fr", "en", None, "fr", "zz"]
