from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.errors import InvalidArticle, SourceError
from recommender.ingest.sources import Record, detect_format, read_source
from recommender.writer import read_batch


def loaded(path: Path) -> tuple[list[Record], list[InvalidArticle]]:
    items = list(read_batch([path]))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, InvalidArticle)]


def test_jsonl_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(
        '{"id": "1", "title": "ok"}\n{"id": "2", "title": \n\n{"id": "3", "body": "fine"}\n', encoding="utf-8"
    )
    good, bad = loaded(src)
    assert [r.article.id for r in good] == ["1", "3"]
    assert len(bad) == 1 and bad[0].location == f"{src}:2" and "malformed JSON" in bad[0].reason


def test_jsonl_line_not_utf8_is_rejected_rest_kept(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_bytes(b'{"id": "1", "title": "ok"}\n{"id": "2", "title": "caf\xe9"}\n{"id": "3", "title": "ok"}\n')
    good, bad = loaded(src)
    assert [r.article.id for r in good] == ["1", "3"]
    assert bad[0].location == f"{src}:2" and "UTF-8" in bad[0].reason


def test_duplicate_ids_in_one_batch_keep_the_first(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    a.write_text('{"id": "1", "title": "first"}\n', encoding="utf-8")
    b = tmp_path / "b.jsonl"
    b.write_text('{"id": "1", "title": "second"}\n', encoding="utf-8")
    good, bad = loaded_many([a, b])
    assert [r.article.title for r in good] == ["first"]
    assert bad[0].location == f"{b}:1" and f"first at {a}:1" in bad[0].reason


def loaded_many(paths: list[Path]) -> tuple[list[Record], list[InvalidArticle]]:
    items = list(read_batch(paths))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, InvalidArticle)]


def test_json_array_file(tmp_path: Path) -> None:
    src = tmp_path / "export.json"
    src.write_text(json.dumps([{"id": "1", "title": "a"}, {"id": "2"}]), encoding="utf-8")
    good, bad = loaded(src)
    assert [r.article.id for r in good] == ["1"]
    assert bad[0].location == f"{src} item 2 (id '2')"


def test_csv_with_header_row(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text(
        "id,title,body,section,tags,published_at,extra\n"
        '1,"Flood, again","Rain fell\nall night",local,"flood,rain",2024-01-02,x\n'
        ",No id,body,,,,\n"
        "3,Bad date,body,,,not-a-date,\n"
        "4,,,,,,\n",
        encoding="utf-8",
    )
    good, bad = loaded(src)
    assert [r.article.id for r in good] == ["1"]
    a = good[0].article
    assert a.title == "Flood, again" and a.body == "Rain fell\nall night" and a.tags == ("flood", "rain")
    assert a.metadata == {"extra": "x"} and a.published_at == "2024-01-02T00:00:00+00:00"
    assert [b.location for b in bad] == [f"{src}:4", f"{src}:5 (id '3')", f"{src}:6 (id '4')"]
    assert "missing 'id'" in bad[0].reason and "ISO 8601" in bad[1].reason and "neither title nor body" in bad[2].reason


def test_csv_without_id_column_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text("title,body\nA,B\n", encoding="utf-8")
    good, bad = loaded(src)
    assert not good and "no 'id' column" in bad[0].reason


def test_csv_not_utf8_names_the_line(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_bytes(b"id,title\n1,ok\n2,caf\xe9\n")
    good, bad = loaded(src)
    assert not good and bad[0].location == f"{src}:3" and "UTF-8" in bad[0].reason


HTML_PAGE = """<!doctype html><html lang="en"><head><title>Flood hits river city | News</title>
<link rel="canonical" href="https://news.example/2024/flood-river-city">
<meta property="og:title" content="Flood hits river city">
<meta property="article:published_time" content="2024-03-01T10:00:00Z">
<meta property="article:section" content="Local">
</head><body><nav><a href="/">Home</a> | <a href="/sport">Sport</a> | Subscribe now!</nav>
<article><h1>Flood hits river city</h1>
<p>Heavy rain flooded the river city on Monday, and hundreds of residents were evacuated from their homes
as the water rose through the night, officials said.</p>
<p>Emergency services said no one was hurt, but damage to homes and shops along the river was severe.</p>
</article><footer>Copyright News Example. Cookie settings.</footer></body></html>"""


def test_html_folder_uses_a_real_extractor(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    (folder / "2024").mkdir(parents=True)
    (folder / "2024" / "flood.html").write_text(HTML_PAGE, encoding="utf-8")
    (folder / "no-canonical.htm").write_text(
        HTML_PAGE.replace('<link rel="canonical" href="https://news.example/2024/flood-river-city">', ""),
        encoding="utf-8",
    )
    (folder / "empty.html").write_text("<html><body></body></html>", encoding="utf-8")
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    assert detect_format(folder) == "html"
    good, bad = loaded(folder)
    by_id = {r.article.id: r.article for r in good}
    assert set(by_id) == {"https://news.example/2024/flood-river-city", "no-canonical"}
    page = by_id["https://news.example/2024/flood-river-city"]
    assert page.title == "Flood hits river city"
    assert "hundreds of residents were evacuated" in page.body
    assert "Subscribe" not in page.body and "Cookie" not in page.body and not page.body.startswith("Flood hits")
    assert page.published_at == "2024-03-01T10:00:00+00:00"  # the time is kept, not cut to the day
    assert page.metadata["published_at_source"] == "meta article:published_time"
    assert page.section == "Local"
    assert len(bad) == 1 and bad[0].location.endswith("empty.html")


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>News</title><link>https://news.example/</link>
<item><guid>https://news.example/a/1</guid><title>Flood hits river city</title><link>https://news.example/a/1?utm_source=rss</link>
<description><![CDATA[<p>Heavy rain <b>flooded</b> the city.</p><p>Residents evacuated.</p>]]></description>
<category>Local</category><pubDate>Mon, 04 Mar 2024 10:00:00 +0100</pubDate></item>
<item><title>No guid, only a link</title><link>https://news.example/a/2</link>
<description>Text two.</description></item>
<item><description></description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title><id>urn:news</id><updated>2024-03-04T10:00:00Z</updated>
<entry><id>urn:uuid:1225c695</id><title>Markets fall</title><link href="https://news.example/b/1"/>
<updated>2024-03-04T10:00:00Z</updated><content type="html">&lt;p&gt;Stocks fell sharply.&lt;/p&gt;</content></entry>
</feed>"""


def test_rss_feed(tmp_path: Path) -> None:
    src = tmp_path / "feed.rss"
    src.write_text(RSS, encoding="utf-8")
    good, bad = loaded(src)
    assert [r.article.id for r in good] == ["https://news.example/a/1", "https://news.example/a/2"]
    first = good[0].article
    assert first.body == "Heavy rain flooded the city.\n\nResidents evacuated."  # paragraphs kept
    assert first.published_at == "2024-03-04T09:00:00+00:00"
    assert first.section == "Local" and first.url == "https://news.example/a/1"  # utm_source stripped
    assert bad[0].location.startswith(f"{src} entry 3 (id ") and "neither title nor body" in bad[0].reason


def test_atom_feed_detected_by_content(tmp_path: Path) -> None:
    src = tmp_path / "feed"  # no suffix: sniffed
    src.write_text(ATOM, encoding="utf-8")
    good, bad = loaded(src)
    assert not bad and good[0].article.id == "urn:uuid:1225c695" and good[0].article.body == "Stocks fell sharply."


def test_broken_feed_is_one_rejection(tmp_path: Path) -> None:
    src = tmp_path / "broken.xml"
    src.write_text("<rss><channel><item>", encoding="utf-8")
    good, bad = loaded(src)
    assert not good and bad and bad[0].location.startswith(str(src))


def test_missing_source_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        list(read_batch([tmp_path / "nope.jsonl"]))


def test_unknown_format(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"\x00\x01binary")
    with pytest.raises(SourceError, match="unknown source format"):
        list(read_source(src))


def test_a_fifo_source_is_refused_not_read(tmp_path: Path) -> None:
    """Issue 15 case 6: a FIFO as SOURCE hung the command (reading it blocks until a writer appears)."""
    import os

    from recommender.ingest.sources import check_sources, read_source

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="not a regular file or a folder"):
        check_sources([fifo])
    with pytest.raises(SourceError, match="not a regular file or a folder"):
        list(read_source(fifo))


def test_html_folder_does_not_follow_a_link_out_of_it(tmp_path: Path) -> None:
    """Issue 15 case 6: a symlink inside the folder to a file outside it was read as an article."""
    secret = tmp_path / "secret.html"
    secret.write_text("<html><head><title>Private</title></head><body><p>not for the index</p></body></html>")
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "leak.html").symlink_to(secret)
    items = list(read_source(folder))
    assert len(items) == 1 and isinstance(items[0], InvalidArticle)
    assert "outside the folder" in str(items[0]) and str(items[0]).startswith(str(folder / "leak.html"))
