"""Stored lists stay what a live ranking gives through every write, and every surface shows the same list."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender import Recommender, add_articles, build_index, delete_articles
from recommender.cli.app import app as cli
from recommender.ranking import lists as related_lists
from recommender.ranking.policy import NO_FILTERS, Filters, RankingPolicy
from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import Settings
from recommender.writer import apply_policy
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, SHARED, FakeEmbedder
from tests.test_bulk_lists import assert_lists_match_live_ranking, corpus

KEY = "k3y"


def stored_ids(rec: Recommender, article_id: str, variant: str = "") -> list[str]:
    key = rec.store.catalog.key_of(article_id)
    assert key is not None
    entry = related_lists.load(rec.store.catalog, key, variant)
    assert entry is not None
    cards = rec.store.catalog.cards([e.key for e in entry.entries])
    return [cards[e.key].id for e in entry.entries]


def test_build_precomputes_every_list_equal_to_live_ranking(fake_index: Path) -> None:
    assert_lists_match_live_ranking(fake_index)
    with Recommender.open(fake_index) as rec:
        for row in ARTICLES:
            assert rec.related(row["id"], k=3).ids == rec.live_related(row["id"], k=3).ids


def test_new_story_enters_its_neighbours_lists_and_leaves_on_delete(fake_index: Path) -> None:
    new = {
        "id": "a4",
        "title": "River city flood evacuated residents rain homes",
        "body": "Flood waters river city residents evacuated homes heavy rain overnight.",
    }
    add_articles(fake_index, articles=[new])
    with Recommender.open(fake_index) as rec:
        for neighbour in ("a1", "a2", "a3"):
            assert "a4" in stored_ids(rec, neighbour)
    assert_lists_match_live_ranking(fake_index)  # keyword weights do not move between full recomputes
    delete_articles(fake_index, ["a4"])
    with Recommender.open(fake_index) as rec:
        for row in ARTICLES:
            assert "a4" not in stored_ids(rec, row["id"])
        dangling = "SELECT COUNT(*) FROM related_refs WHERE dst NOT IN (SELECT key FROM articles)"
        assert rec.store.catalog.conn.execute(dangling).fetchone()[0] == 0
    assert_lists_match_live_ranking(fake_index)


def test_edited_story_is_re_ranked_everywhere(fake_index: Path) -> None:
    # b2 stops being about rates: it must leave b1's list
    add_articles(
        fake_index,
        articles=[{"id": "b2", "title": "Football cup final fans", "body": "team stadium goal cup final football"}],
    )
    with Recommender.open(fake_index) as rec:
        assert "b2" not in stored_ids(rec, "b1")
        assert "b2" in stored_ids(rec, "c1")
    assert_lists_match_live_ranking(fake_index)


def test_lookup_with_filters_falls_back_to_search_when_needed(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        local = Filters(section="local")
        assert rec.related("a1", k=2, filters=local).ids == rec.live_related("a1", k=2, filters=local).ids
        assert rec.lists.lookup("a1", 30, NO_FILTERS) is None  # deeper than stored: a live search
        assert rec.related("a1", k=30).ids == rec.live_related("a1", k=30).ids


def test_crash_before_list_update_is_caught_up(fake_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: related_lists.Lists) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(related_lists.Lists, "catch_up", crash)
    with pytest.raises(KeyboardInterrupt):
        add_articles(
            fake_index,
            articles=[{"id": "a5", "title": "River city flood residents evacuated", "body": "flood rain homes"}],
        )
    monkeypatch.undo()
    with Recommender.open(fake_index) as rec:
        assert related_lists.related_seq(rec.store.catalog) < rec.store.catalog.last_seq()
        assert rec.stored_related("a1", 3) is None  # stale lists are never served: a live search answers
        assert "a5" in rec.related("a1", k=4).ids
        assert rec.lists.catch_up() == 1
        assert "a5" in stored_ids(rec, "a1")
    assert_lists_match_live_ranking(fake_index)


@pytest.mark.parametrize(("added", "expected"), [(2, "update"), (3, "update"), (4, "refresh_all")])
def test_catch_up_recomputes_every_list_only_when_much_changed(
    tmp_path: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch, added: int, expected: str
) -> None:
    """Changes past the stored lists are replayed one by one, unless they are more than FULL_REFRESH_SHARE of
    the archive (15 articles here: up to 3 replayed)."""
    rows = corpus(seed=5, stories=15)[:15]
    build_index(articles=rows[: 15 - added], index_dir=tmp_path / "index", model=FAKE_MODEL)
    monkeypatch.setattr(related_lists.Lists, "catch_up", lambda self: 0)  # a crash before the lists' update
    add_articles(tmp_path / "index", articles=rows[15 - added :])
    monkeypatch.undo()
    called: list[str] = []
    for name in ("update", "refresh_all"):
        original = getattr(related_lists.Lists, name)
        monkeypatch.setattr(
            related_lists.Lists,
            name,
            lambda self, *args, _name=name, _original=original: called.append(_name) or _original(self, *args),
        )
    with Recommender.open(tmp_path / "index") as rec:
        assert rec.store.catalog.count() == 15
        assert rec.store.catalog.count(at_most=5) == 5 and rec.store.catalog.count(at_most=99) == 15
        rec.lists.catch_up()
    assert called[0] == expected
    assert_lists_match_live_ranking(tmp_path / "index")


def test_insertion_places_the_newcomer_by_its_score(fake_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing re-selects a neighbour's stored list plus the newcomer (no new search for the neighbour):
    a clear follow-up goes to the top of its neighbour's list."""
    searched: list[int] = []
    original = related_lists.Ranker.rank

    def spy(self: related_lists.Ranker, subject: object, k: int, filters: Filters = NO_FILTERS) -> object:
        searched.append(getattr(subject, "key", -1))
        return original(self, subject, k, filters)  # type: ignore[arg-type]

    monkeypatch.setattr(related_lists.Ranker, "rank", spy)
    add_articles(
        fake_index,
        articles=[
            {
                "id": "b9",
                "title": "Central bank signals more interest rate rises",
                "body": "Inflation stays high, the central bank says; markets fell again as "
                "traders expect interest rates to rise further.",
                "published_at": "2024-02-02T10:00:00Z",  # the day after b1: a follow-up
            }
        ],
    )
    with Recommender.open(fake_index) as rec:
        b1 = rec.store.catalog.key_of("b1")
        after = related_lists.load(rec.store.catalog, b1 or -1)
        assert after is not None and [e.score for e in after.entries] == sorted(
            (e.score for e in after.entries), reverse=True
        )
        assert stored_ids(rec, "b1")[0] == "b9" == rec.related("b1", k=1).ids[0]
    assert b1 not in searched  # b1's list took the newcomer without a search of its own
    assert_lists_match_live_ranking(fake_index)


# -- random write sequences: every path, every surface ----------------------------------------------------------
def dated(rows: list[dict], seed: int) -> list[dict]:
    """Dates over a few weeks (some stories undated) and a second language, so time and language rules act."""
    rng = random.Random(seed)
    out = []
    for n, row in enumerate(rows):
        extra: dict[str, object] = {"language": "de" if n % 9 == 4 else "en"}
        if n % 6:
            extra["published_at"] = f"2024-05-{1 + rng.randrange(28):02d}T{rng.randrange(24):02d}:00:00+02:00"
        out.append({**row, **extra})
    return out


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server did not follow the write"
        time.sleep(0.02)


def cli_similar(index_dir: Path, article_id: str, k: int, *extra: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["similar", article_id, "--index", str(index_dir), "-k", str(k), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.thorough
@pytest.mark.parametrize(
    "seed, policy",
    [
        (11, None),
        (12, RankingPolicy(time_half_life_days=3, time_weight=0.5, keyword_weight=0.3, language="same")),
        (13, RankingPolicy(keyword_gate=0.5, keyword_prior_docs=20, diversity=0.3)),
        # the German stories are in a language the model does not read: shared words rank their lists
        (14, RankingPolicy(model_languages="en", language="any", foreign_keyword_weight=0.6)),
    ],
    ids=["defaults", "time-language", "gate-prior-diversity", "unread-language"],
)
def test_random_writes_keep_every_list_equal_on_every_surface(
    tmp_path: Path, fake: FakeEmbedder, seed: int, policy: RankingPolicy | None
) -> None:
    """Build, then a random sequence of CLI adds (new and edited stories), deletes, PUTs and DELETEs over HTTP:
    after each, every stored list equals a live ranking of the catalog, and for a sample of stories `similar
    --json` (the CLI) and GET /v1/articles/ID/related (the server, which followed the writes) return the same
    ids in the same order with the same scores."""
    rng = random.Random(seed)
    rows = dated(corpus(seed, 28), seed)
    spare = dated(corpus(seed + 100, 16), seed + 100)
    for n, row in enumerate(spare):
        row["id"] = f"n{n}"
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], index_dir, model=FAKE_MODEL, policy=policy)
    service = Service(
        Settings(index=str(index_dir), api_key=KEY), embedder=SHARED, check_interval=0.02, autosave_seconds=0
    )
    live_ids = {r["id"] for r in rows}
    with TestClient(create_app(service, Settings(api_key=KEY))) as client:
        for step in range(8):
            op = rng.choice(["add", "edit", "delete", "put", "http-delete"])
            if op == "add" and spare:
                batch = [spare.pop() for _ in range(min(len(spare), rng.randint(1, 3)))]
                add_articles(index_dir, articles=batch)
                live_ids |= {r["id"] for r in batch}
            elif op == "edit":
                victim = rng.choice(sorted(live_ids))
                row = next(r for r in rows + spare if r["id"] == victim) if victim.startswith("s") else None
                if row is not None:
                    add_articles(index_dir, articles=[{**row, "body": row["body"] + f" correction{step} name7"}])
            elif op == "delete" and len(live_ids) > 10:
                gone = rng.sample(sorted(live_ids), 2)
                delete_articles(index_dir, gone)
                live_ids -= set(gone)
            elif op == "put" and spare:
                row = spare.pop()
                r = client.put(f"/v1/articles/{row['id']}", json=row, headers={"Authorization": f"Bearer {KEY}"})
                assert r.status_code == 200, r.text
                live_ids.add(row["id"])
            elif op == "http-delete" and len(live_ids) > 10:
                gone = rng.choice(sorted(live_ids))
                r = client.delete(f"/v1/articles/{gone}", headers={"Authorization": f"Bearer {KEY}"})
                assert r.status_code == 200, r.text
                live_ids.discard(gone)
            assert_lists_match_live_ranking(index_dir)
            with Recommender.open(index_dir, embedder=SHARED) as rec:
                version = rec.index_version
            sample = rng.sample(sorted(live_ids), 4)
            first, wanted = sample[0], version
            eventually(lambda: client.get(f"/v1/articles/{first}/related").json()["index_version"] == wanted)  # noqa: B023
            for article_id in sample:
                for k, params, flags in ((5, {}, ()), (20, {}, ()), (3, {"section": "flood"}, ("--section", "flood"))):
                    served = client.get(f"/v1/articles/{article_id}/related", params={"k": k, **params}).json()
                    assert served["index_version"] == version
                    assert served["related"] == cli_similar(index_dir, article_id, k, *flags), (step, op, article_id)


def test_policy_change_recomputes_every_list_and_survives_a_restart(tmp_path: Path, fake: FakeEmbedder) -> None:
    rows = dated(corpus(21, 30), 21)
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], index_dir, model=FAKE_MODEL)
    with Recommender.open(index_dir) as rec:
        before = {r["id"]: rec.related(r["id"], 5) for r in rows}
        version = rec.index_version
    wanted = RankingPolicy(keyword_weight=0.0, time_half_life_days=1, time_weight=0.8)
    assert apply_policy(index_dir, wanted) is True
    assert apply_policy(index_dir, wanted) is False  # already so: nothing recomputed
    with Recommender.open(index_dir) as rec:  # a new process: the policy was recorded with the index
        assert rec.policy == wanted and rec.info()["ranking"] == wanted.to_dict()
        assert rec.index_version != version
        after = {r["id"]: rec.related(r["id"], 5) for r in rows}
    assert after != before
    assert_lists_match_live_ranking(index_dir)


def test_variants_have_lists_of_their_own(tmp_path: Path, fake: FakeEmbedder) -> None:
    rows = dated(corpus(31, 30), 31)
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], index_dir, model=FAKE_MODEL)
    b = RankingPolicy(keyword_weight=0.0)
    assert apply_policy(index_dir, b, variant="b") is True
    add_articles(index_dir, articles=dated(corpus(32, 3), 32))  # writes keep every variant's lists current
    assert_lists_match_live_ranking(index_dir, "b")
    assert_lists_match_live_ranking(index_dir)
    with Recommender.open(index_dir) as rec:
        assert rec.variants == {"b": b}
        differs = [r["id"] for r in rows if rec.related(r["id"], 5).ids != rec.related(r["id"], 5, variant="b").ids]
        assert differs
    assert apply_policy(index_dir, None, variant="b") is True
    with Recommender.open(index_dir) as rec:
        assert rec.variants == {}
        assert rec.store.catalog.conn.execute("SELECT COUNT(*) FROM related WHERE variant = 'b'").fetchone()[0] == 0
