"""The ingest heuristics as pure functions (titles, dates, text), and the same rules on the saved real pages when
``../shared/data/real-pages`` is there (trafilatura's own test pages; skipped without them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from recommender.ingest.dates import parse_date
from recommender.ingest.pages import read_html_file
from recommender.ingest.records import Record
from recommender.ingest.text import clean_tags, html_to_text, split_title

REAL_PAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-pages"


@pytest.mark.parametrize(
    ("title", "site", "expected"),
    [
        (
            "Uncork the mystery of Germany′s Frühburgunder | DW | 10.06.2013",
            "DW.COM",
            ("Uncork the mystery of Germany′s Frühburgunder", "10.06.2013"),
        ),
        (
            "Thousands of UK academics | Education | The Guardian",
            "The Guardian",
            ("Thousands of UK academics | Education", None),
        ),
        ("SPIEGEL ONLINE - Ein Albtraum", "SPIEGEL ONLINE, Hamburg, Germany", ("Ein Albtraum", None)),
        (
            "Letters: Coddling criminals | Undermining road",
            "The Mercury News",
            ("Letters: Coddling criminals | Undermining road", None),
        ),
        ("Tech - Apple unveils a phone - The Verge", "The Verge", ("Tech - Apple unveils a phone", None)),
        ("Budget vote | Politics", None, ("Budget vote | Politics", None)),  # no site name: nothing cut
    ],
)
def test_split_title(title: str, site: str | None, expected: tuple[str, str | None]) -> None:
    assert split_title(title, site) == expected


def test_split_title_drops_the_section_beside_the_site_name() -> None:
    assert split_title("Thousands of UK academics | Education | The Guardian", "The Guardian", "Education") == (
        "Thousands of UK academics",
        None,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-06-12T18:11:51+03:00", datetime(2026, 6, 12, 15, 11, 51, tzinfo=UTC)),
        ("2026-06-12T13:39:00Z", datetime(2026, 6, 12, 13, 39, tzinfo=UTC)),
        ("Mon, 04 Mar 2024 10:00:00 +0100", datetime(2024, 3, 4, 9, 0, tzinfo=UTC)),
        ("Jun 12, 2026 13:39 IST", datetime(2026, 6, 12, 8, 9, tzinfo=UTC)),
        ("1718204400", datetime(2024, 6, 12, 15, 0, tzinfo=UTC)),
        (1718204400000, datetime(2024, 6, 12, 15, 0, tzinfo=UTC)),
        ("2024-06-12 17:11:51", datetime(2024, 6, 12, 17, 11, 51, tzinfo=UTC)),
    ],
)
def test_parse_date_keeps_time_and_zone(value: object, expected: datetime) -> None:
    assert parse_date(value) == expected


def test_parse_date_naive_in_the_given_zone_and_non_dates() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert parse_date("2024-06-12 17:11:51", plus_two) == datetime(2024, 6, 12, 15, 11, 51, tzinfo=UTC)
    assert parse_date("0000-00-00 00:00:00") is None and parse_date("soon") is None and parse_date(True) is None


def test_html_to_text_cases() -> None:
    assert html_to_text("<!-- wp:paragraph --><p>It&#8217;s here</p><!-- /wp:paragraph -->") == "It\u2019s here"
    assert html_to_text("&lt;p&gt;Escaped &amp;amp; twice&lt;/p&gt;") == "Escaped & twice"
    assert html_to_text("<p>One</p><script>var x = 1;</script><p>Two</p>") == "One\n\nTwo"
    assert html_to_text("a < b and c > d") == "a < b and c > d"  # not markup: untouched
    assert html_to_text("  plain  text  ") == "plain  text"  # plain text keeps its spacing (and its hash)
    assert clean_tags(["Film &amp; TV,Animation", "film & tv", None, " "]) == ["Film & TV", "Animation"]


def real(name: str) -> Path:
    path = REAL_PAGES / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


@pytest.mark.parametrize(
    ("name", "title", "published_at", "source", "language"),
    [
        (
            "dw.com.uncork.html",
            "Uncork the mystery of Germany's Frühburgunder",
            "2013-06-10T00:00:00+00:00",
            "title",
            "en",
        ),
        (
            "theguardian.com.academics.html",
            "Thousands of UK academics 'treated as second-class citizens'",
            "2020-01-20T06:05:18+00:00",
            "meta article:published_time",
            "en",
        ),
        (
            "zeit.de.zugverkehr.html",
            "Zugverkehr: Im ICE von Frankfurt nach Barcelona",
            "2020-01-14T08:21:29+00:00",
            "json-ld datePublished",
            "de",
        ),
        (
            "scmp.com.playbook.html",
            "Carrie Lam should study Tsai Ing-wen’s playbook",
            "2020-01-20T02:00:08+00:00",
            "meta article:published_time",
            "en",
        ),
    ],
)
def test_real_pages(name: str, title: str, published_at: str, source: str, language: str) -> None:
    record = read_html_file(real(name), name)
    assert isinstance(record, Record), record
    article = record.article
    assert article.title == title and article.language == language
    assert article.published_at == published_at and article.metadata["published_at_source"] == source
    assert article.url and article.url.startswith("https://") and "utm_" not in article.url


def test_real_page_tags_are_a_clean_list() -> None:
    record = read_html_file(real("theguardian.com.academics.html"), "g")
    assert isinstance(record, Record)
    tags = record.article.tags
    assert tags[:3] == ("Higher education", "Academics", "Lecturers pay") and len(tags) == len(
        {t.lower() for t in tags}
    )


#: Sentences in many scripts and languages, news-like, with the edge cases of the detector's input.
_LANGUAGE_SAMPLES = [
    "The council approved the budget for the new bridge over the river on Wednesday.",
    "Le conseil municipal a approuvé mercredi le budget du nouveau pont sur la rivière.",
    "Der Gemeinderat hat am Mittwoch den Bau der neuen Brücke beschlossen, die Arbeiten beginnen im Herbst.",
    "El ayuntamiento aprobó el miércoles el presupuesto del nuevo puente sobre el río.",
    "Il consiglio comunale ha approvato mercoledì il bilancio del nuovo ponte sul fiume.",
    "De gemeenteraad heeft woensdag de begroting voor de nieuwe brug over de rivier goedgekeurd.",
    "Городской совет в среду утвердил бюджет нового моста через реку.",
    "市议会周三批准了横跨河流的新桥预算。",
    "市議会は水曜日、川に架かる新しい橋の予算を承認した。",
    "وافق مجلس المدينة يوم الأربعاء على ميزانية الجسر الجديد فوق النهر.",
    "Το δημοτικό συμβούλιο ενέκρινε την Τετάρτη τον προϋπολογισμό της νέας γέφυρας.",
    "BREAKING: MARKETS FALL AS THE CENTRAL BANK RAISES RATES AGAIN",  # all capitals: py3langid lowercases it
    "12345 67890 !!! ??? 2024-01-01",  # digits and punctuation
    "Markets fall",
    "",
    "   ",
    "Brexit: la Commission européenne says the deal is done, sagt Berlin",  # mixed
]


def _language_texts() -> list[str]:
    """The samples, each also cut short, and the real labelled sets and pages when ``../shared/data`` is here."""
    import json

    from recommender.articles import compose_text

    texts = list(_LANGUAGE_SAMPLES)
    data = REAL_PAGES.parent
    for path in sorted(data.glob("*.jsonl"))[:3]:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if number >= 300:
                    break
                row = json.loads(line)
                texts.append(compose_text(row.get("title") or "", row.get("body") or ""))
    for path in sorted(REAL_PAGES.glob("*.html"))[:40]:
        record = read_html_file(path, path.name)
        if isinstance(record, Record):
            texts.append(record.article.text)
    return texts + [text[:cut] for text in texts for cut in (15, 40, 120)]


@pytest.mark.thorough  # every text of the fixtures, cut three ways
def test_batched_language_detection_is_py3langid_classify() -> None:
    """The batch walk (:mod:`recommender.ingest.langid_batch`) gives py3langid's own answer, to the last bit of
    the confidence, and so :func:`detect_languages` the answers of :func:`detect_language`."""
    from recommender.ingest.langid_batch import BatchClassifier
    from recommender.ingest.language import (
        DETECT_CHARS,
        _identifier,
        batch_classifier,
        detect_language,
        detect_languages,
    )

    texts = _language_texts()
    identifier = _identifier()
    classifier = batch_classifier()
    assert isinstance(classifier, BatchClassifier)  # the pinned py3langid has what the batch walk reads
    samples = [t[:DETECT_CHARS].strip() for t in texts if t.strip()]
    for start in range(0, len(samples), 200):
        chunk = samples[start : start + 200]
        assert classifier.classify_many(chunk) == [identifier.classify(t) for t in chunk]
    expected = [detect_language(t) for t in texts]
    assert detect_languages(texts, classifier) == expected
    assert detect_languages(texts) == expected  # without a classifier: one at a time
    assert detect_languages([], classifier) == [] and classifier.classify_many([]) == []
    assert {"en", "fr", "de", "ru", "zh"} <= set(expected)
