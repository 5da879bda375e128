""" "Why this?": the reason sentence (pure), the shared terms it names, and the three surfaces (fake embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender import Recommender
from recommender.cli.app import app
from recommender.controls.explain import Evidence, display_term, reason
from recommender.ranking.keywords import tokenize
from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import Settings
from tests.conftest import ARTICLES
from tests.fakes import FakeEmbedder


@pytest.mark.parametrize(
    ("evidence", "sentence"),
    [
        (
            Evidence(("Cheeks", "76ers", "coach"), "follow-up", "2 days later", 2.0, "sport", 0.5),
            "Follow-up, 2 days later; both mention Cheeks, 76ers and coach; also in sport.",
        ),
        (
            Evidence(("flood", "river"), "same-day", "the same day", 0.2, None, 0.81),
            "Same event, the same day; both mention flood and river.",
        ),
        (
            Evidence(("flood",), "follow-up", "1 day later", 1.5, None, 0.75),
            "Same event, 1 day later; both mention flood.",
        ),
        (
            Evidence(("flood",), "same-day", "the same day", 0.1, None, 0.3),
            "Published the same day; both mention flood.",
        ),
        (
            Evidence(("budget",), "background", "3 months earlier", -95.0, None, 0.7),
            "Background, 3 months earlier; both mention budget.",
        ),
        (Evidence((), None, None, None, None, 0.6), "Close in meaning, with no key word in common."),
        (
            Evidence((), "background", "2 years earlier", -800.0, "local", 0.1, pinned=True),
            "Picked by an editor; background, 2 years earlier; also in local.",
        ),
        (
            Evidence(("a", "b", "c", "d"), None, None, None, None, 0.5),
            "Both mention a, b and c.",
        ),
    ],
)
def test_reason_sentences(evidence: Evidence, sentence: str) -> None:
    assert reason(evidence) == sentence


@pytest.mark.parametrize(
    ("term", "texts", "shown"),
    [
        ("cheeks", ["Maurice Cheeks was fired. The 76ers fired coach Maurice Cheeks."], "Cheeks"),
        ("maurice", ["Maurice Cheeks was fired. The 76ers fired coach Maurice Cheeks."], "Maurice"),
        ("flood", ["Flood waters rise. Heavy rain flooded; the flood rose."], "flood"),  # capital only at the start
        ("nato", ["Talks at NATO headquarters"], "NATO"),
        ("river", ["River city flood"], "river"),  # opens the headline: says nothing
        ("absent", ["nothing here"], "absent"),
        ("ers", ["The 76ers won"], "ers"),  # whole words only
    ],
)
def test_terms_are_shown_as_the_stories_write_them(term: str, texts: list[str], shown: str) -> None:
    assert display_term(term, texts) == shown


def test_reasons_name_shared_words_but_never_the_commonest(fake_index: Path) -> None:
    from recommender.controls.rules import Rule, add_rule

    with Recommender.open(fake_index) as rec:
        terms = rec.shared_terms("a1", "a2", 3)
        a1, a2 = (set(tokenize(f"{a['title']} {a['body']}")) for a in ARTICLES[:2])
        assert "flood" in terms and set(terms) <= a1 & a2
    add_rule(fake_index, Rule.pin("a1", "c1", 1))  # a football final under a flood: only "the", "in" in common
    with Recommender.open(fake_index) as rec:
        assert set(rec.shared_terms("a1", "c1", 3)) <= {"the", "in"}
        pinned = rec.related("a1", 3, explain=True).items[0]
        assert pinned.id == "c1" and pinned.reason == "Picked by an editor; background, 10 months earlier."


def test_every_suggestion_has_a_reason_when_asked_and_none_otherwise(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        for story in ("a1", "b1", "c1", "a3"):
            explained = rec.related(story, 5, explain=True)
            assert explained.items and all(s.reason and s.reason.endswith(".") for s in explained.items)
            assert [s.id for s in explained.items] == rec.related(story, 5).ids  # the reason changes no order
            assert all(s.reason is None for s in rec.related(story, 5).items)
        reasons = {s.id: s.reason for s in rec.related("a1", 5, explain=True).items}
        assert reasons["a2"] is not None and reasons["a2"].startswith("Same event, 1 day later; both mention")
        assert "also in local" in reasons["a2"]


@pytest.fixture
def client(fake_index: Path, fake: FakeEmbedder) -> TestClient:
    service = Service(fake_index, embedder=fake, check_interval=0.02, autosave_seconds=0)
    return TestClient(create_app(service, Settings(api_key="k")))


def test_http_explain_gives_a_reason_for_every_suggestion(client: TestClient) -> None:
    with client:
        for story in ("a1", "a2", "b2", "c2"):
            explained = client.get(f"/v1/articles/{story}/related", params={"k": 5, "explain": 1}).json()
            assert explained["related"] and all(item["reason"] for item in explained["related"])
            plain = client.get(f"/v1/articles/{story}/related", params={"k": 5}).json()
            assert all("reason" not in item for item in plain["related"])  # cached apart
            assert [i["id"] for i in plain["related"]] == [i["id"] for i in explained["related"]]
        html = client.get("/v1/articles/a1/related.html", params={"k": 3, "explain": 1}).text
        assert 'title="Same event, 1 day later; both mention' in html  # the fragment's tooltip


def test_cli_similar_explain(fake_index: Path, fake: FakeEmbedder) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["similar", "a1", "--index", str(fake_index), "--explain", "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert items and all(item["reason"] for item in items)
    table = runner.invoke(app, ["similar", "a1", "--index", str(fake_index), "--explain"], env={"COLUMNS": "240"})
    assert table.exit_code == 0 and "why" in table.stdout and "Same event" in table.stdout
