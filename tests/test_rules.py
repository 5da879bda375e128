"""Editors' rules: pins, blocks, exclusions and expiry, through the library, the CLI and HTTP (fake embedder)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender import Recommender, add_articles, build_index
from recommender.cli.app import app
from recommender.controls.rules import Rule, RuleBook, add_rule, delete_rules, list_rules
from recommender.errors import ArticleNotFound, InvalidRule, InvalidTime, RuleNotFound
from recommender.ranking.policy import Filters
from recommender.serving.export import export_static
from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import Settings
from recommender.when import parse_when
from tests.conftest import write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder

KEY = "editor-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
runner = CliRunner()


def ids(rec: Recommender, article_id: str, k: int = 5, filters: Filters | None = None) -> list[str]:
    return rec.related(article_id, k, filters or Filters()).ids


# -- the rule model ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "promote", "target": "a2"}, "kind must be one of"),
        ({"kind": "pin", "story": "a1"}, "pin needs target"),
        ({"kind": "pin", "story": "a1", "target": "a1"}, "cannot be pinned under itself"),
        ({"kind": "pin", "story": "a1", "target": "a2", "position": 0}, "position must be from 1 to 50"),
        ({"kind": "pin", "story": "a1", "target": "a2", "position": 51}, "position must be from 1 to 50"),
        ({"kind": "pin", "story": "a1", "target": "a2", "position": "2"}, "whole number"),
        ({"kind": "block"}, "block needs target"),
        ({"kind": "block", "target": "a2", "section": "sport"}, "exclude takes sections and tags"),
        ({"kind": "block", "target": "a2", "position": 2}, "that is for pins"),
        ({"kind": "exclude", "section": "sport", "tag": "x"}, "a section or a tag, not both"),
        ({"kind": "exclude", "target": "a2"}, "to never show one story, block it"),
        ({"kind": "exclude"}, "would empty every list"),
        ({"kind": "exclude", "section": "x", "under": "a1", "under_tag": "t"}, "at most one of under"),
        ({"kind": "exclude", "section": "x", "until": "yesterday"}, "is not a date"),
        ({"kind": "exclude", "section": "x", "until": "2020-01-01"}, "is already past"),
        ({"kind": "exclude", "section": "x", "colour": "red"}, "unknown field(s) colour"),
        ({"kind": "block", "target": "x" * 513}, "target must be 1 to 512 characters"),
        ({"kind": "block", "target": "a2", "note": "n" * 501}, "note must be at most 500"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(values: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRule, match=message.replace("(", r"\(").replace(")", r"\)")):
        Rule.from_request(values, NOW)


def test_rules_describe_themselves() -> None:
    until = NOW + timedelta(days=2)
    assert Rule.pin("a1", "b1", 2, until).describe() == "pin 'b1' at position 2 under 'a1' until 2026-12-02T12:00:00Z"
    assert Rule.block("a2").describe() == "block 'a2' everywhere"
    assert Rule.block("a2", under="a1").describe() == "block 'a2' under 'a1'"
    assert Rule.exclude(tag="sponsored").describe() == "exclude tag 'sponsored' everywhere"
    assert Rule.exclude(section="wire", under_tag="flood").describe() == "exclude section 'wire' under tag 'flood'"
    assert Rule.exclude(under_section="obituaries").describe() == "show nothing under section 'obituaries'"


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("48h", {}, NOW + timedelta(hours=48)),
        ("7d", {"past": True}, NOW - timedelta(days=7)),
        ("2w", {}, NOW + timedelta(weeks=2)),
        ("30m", {}, NOW + timedelta(minutes=30)),
        ("2026-12-01", {}, datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01", {"end_of_day": True}, datetime(2026, 12, 2, tzinfo=UTC)),  # "until Dec 1" includes Dec 1
        ("2026-12-01T18:30", {}, datetime(2026, 12, 1, 18, 30, tzinfo=UTC)),  # no zone: UTC
        ("2026-12-01T18:30+01:00", {}, datetime(2026, 12, 1, 17, 30, tzinfo=UTC)),
        ("2026-12-01T18:30:00Z", {}, datetime(2026, 12, 1, 18, 30, tzinfo=UTC)),
    ],
)
def test_times_editors_type(text: str, kwargs: dict[str, bool], expected: datetime) -> None:
    assert parse_when(text, NOW, **kwargs) == expected


def test_unreadable_time_is_a_clear_error() -> None:
    with pytest.raises(InvalidTime, match="not a date"):
        parse_when("next friday", NOW)


def test_rulebook_applies_by_scope_and_expiry() -> None:
    rules = [
        Rule("block", "story", "x1", id=1),
        Rule("block", "story", "x2", "story", "s1", id=2),
        Rule("exclude", "section", "Wire", "section", "Local", id=3),
        Rule("exclude", "tag", "sponsored", id=4, until=NOW + timedelta(hours=1)),
        Rule("exclude", "all", None, "tag", "obituary", id=5),
        Rule("pin", "story", "p1", "story", "s1", position=2, id=6),
        Rule("pin", "story", "p2", "story", "s1", position=1, id=7),
    ]
    book = RuleBook(rules, version=7)
    from recommender.articles import Article

    s1 = Article("s1", section="local", tags=("Flood",))
    now = book.for_story(s1, NOW)
    assert now.filters.exclude == {"x1", "x2"} and now.filters.exclude_sections == {"wire"}
    assert now.filters.exclude_tags == {"sponsored"} and not now.hidden
    assert [(p.target, p.position) for p in now.pins] == [("p2", 1), ("p1", 2)]
    later = book.for_story(s1, NOW + timedelta(hours=2))  # the tag exclusion has expired
    assert later.filters.exclude_tags == frozenset()
    other = book.for_story(Article("s9", section="sport", tags=("OBITUARY",)), NOW)
    assert other.hidden and other.filters.exclude == {"x1"} and other.pins == ()
    assert book.version_tag(NOW) == "-r7.0" and book.version_tag(NOW + timedelta(hours=2)) == "-r7.1"
    assert book.next_expiry(NOW) == NOW + timedelta(hours=1) and book.next_expiry(NOW + timedelta(hours=2)) is None
    assert RuleBook([], 0).version_tag(NOW) == ""  # an index that never had rules keeps its version


# -- applied in the one read call --------------------------------------------------------------------------------------
def test_pin_goes_to_its_position_flagged_and_only_once(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        before = ids(rec, "a1", 3)
    assert before[:2] == ["a2", "a3"]
    add_rule(fake_index, Rule.pin("a1", "c1", 1))
    add_rule(fake_index, Rule.pin("a1", "a3", 2))  # already listed: moved, never shown twice
    with Recommender.open(fake_index) as rec:
        related = rec.related("a1", 3)
        assert related.ids[:3] == ["c1", "a3", "a2"] and len(related.ids) == len(set(related.ids))
        assert [s.pinned for s in related.items][:3] == [True, True, False]
        assert related.items[0].to_dict()["pinned"] is True and "pinned" not in related.items[2].to_dict()
        assert rec.related("a1", 1).ids == ["c1"]  # k still holds
        assert "c1" not in ids(rec, "a2")  # a pin belongs to one story's list
        assert "c1" not in ids(rec, "a1", 3, Filters(section="local"))  # the request's filters still apply


def test_pin_far_down_a_short_list_goes_last(fake_index: Path) -> None:
    add_rule(fake_index, Rule.pin("a1", "b2", 9))
    with Recommender.open(fake_index) as rec:
        related = rec.related("a1", 10)
        assert related.ids[-1] == "b2" and related.items[-1].pinned


def test_block_everywhere_or_under_one_story(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        assert "a2" in ids(rec, "a1") and "a2" in ids(rec, "a3")
    rule = add_rule(fake_index, Rule.block("a2", under="a1"))
    with Recommender.open(fake_index) as rec:
        assert "a2" not in ids(rec, "a1") and "a2" in ids(rec, "a3")
    delete_rules(fake_index, [rule.id or 0])
    add_rule(fake_index, Rule.block("a2"))
    with Recommender.open(fake_index) as rec:
        assert all("a2" not in ids(rec, story, 7) for story in ("a1", "a3", "a1-wire", "b1"))
        assert "a2" not in rec.related_to_text("flood river city residents evacuated", 5).ids  # free text too


def test_a_pin_never_beats_a_block(fake_index: Path) -> None:
    add_rule(fake_index, Rule.pin("a1", "c1", 1))
    add_rule(fake_index, Rule.block("c1", note="legal hold"))
    with Recommender.open(fake_index) as rec:
        assert "c1" not in ids(rec, "a1")


def test_exclude_a_section_a_tag_or_everything_under_some_stories(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        assert len({"a1", "a1-wire"} & set(ids(rec, "a2", 7))) == 1  # one link per copy group
    add_rule(fake_index, Rule.exclude(section="Wire"))  # compared case-insensitively
    with Recommender.open(fake_index) as rec:
        assert "a1-wire" not in ids(rec, "a2", 7) and "a3" in ids(rec, "a2", 7)
    add_rule(fake_index, Rule.exclude(tag="WEATHER"))  # a1 carries the tag "weather"
    add_rule(fake_index, Rule.exclude(section="sport", under_section="business"))
    add_rule(fake_index, Rule.exclude(under_section="sport"))  # nothing at all under sport stories
    with Recommender.open(fake_index) as rec:
        assert not {"a1", "a1-wire"} & set(ids(rec, "a2", 7)) and "a3" in ids(rec, "a2", 7)
        assert rec.related("c1", 5).ids == [] and rec.related("c2", 5).ids == []
        assert not {"c1", "c2"} & set(ids(rec, "b1", 7)) and "b2" in ids(rec, "b1", 7)


FLOODS = [
    {
        "id": f"f{n}",
        "title": f"Flood report {n}: river city water",
        "body": "Flood river city rain water residents " + " ".join(f"detail{n}x{m}" for m in range(1 + n % 5)),
        "section": "local" if n % 3 else "wire",
        "published_at": f"2024-03-{n + 1:02d}T08:00:00Z",
    }
    for n in range(24)
]


def test_rules_refill_the_list_exactly_like_the_same_filters_would(tmp_path: Path, fake: FakeEmbedder) -> None:
    """A block or exclusion is a filter: the list still has k stories while k others exist, and it is the very
    list a request with the same filters gets (stored entries refilled from deeper, else a live search)."""
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "f.jsonl", FLOODS)], index_dir, model=FAKE_MODEL)
    with Recommender.open(index_dir) as rec:
        top = {story: ids(rec, story, 5) for story in ("f0", "f5", "f9")}
    blocked = {top["f5"][0], top["f5"][1], top["f9"][0]}
    for target in sorted(blocked):
        add_rule(index_dir, Rule.block(target))
    add_rule(index_dir, Rule.exclude(section="wire"))
    expected = Filters(exclude=frozenset(blocked), exclude_sections=frozenset({"wire"}))
    with Recommender.open(index_dir) as rec:
        for story in ("f0", "f5", "f9"):
            for k in (3, 5, 8):
                with_rules = rec.related(story, k)
                assert with_rules.ids == rec.live_related(story, k, expected).ids
                others = [a for a in FLOODS if a["id"] != story and a["id"] not in blocked and a["section"] != "wire"]
                assert len(with_rules) == min(k, len(others)) and not blocked & set(with_rules.ids)
                assert len(others) >= k  # so the list is full: rules never shorten it while k stories pass
                assert all(s.section != "wire" for s in with_rules.items)


def test_rule_changes_and_expiry_change_the_index_version_without_a_rebuild(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        plain = rec.index_version
        soon = datetime.now(UTC) + timedelta(seconds=1.5)
        add_rule(fake_index, Rule.block("a2", until=soon))
        assert rec.follow_rules() and rec.index_version != plain  # another process's rule, picked up
        blocked_version = rec.index_version
        assert "a2" not in ids(rec, "a1")
        assert not rec.follow_rules()  # nothing new
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
        assert "a2" in ids(rec, "a1")  # expired: applies no more, nothing rebuilt
        assert rec.index_version not in (plain, blocked_version)  # cached answers and ETags move on


def test_rules_are_listed_and_deleted(fake_index: Path) -> None:
    first = add_rule(fake_index, Rule.block("a2", note="correction"))
    second = add_rule(fake_index, Rule.exclude(tag="sponsored", until=datetime.now(UTC) + timedelta(days=1)))
    listed = list_rules(fake_index)
    assert [r.id for r in listed] == [first.id, second.id] and listed[0].note == "correction"
    assert listed[1].until is not None and listed[0].created_at is not None
    with pytest.raises(RuleNotFound):
        delete_rules(fake_index, [999])
    assert delete_rules(fake_index, [first.id or 0]) == [first.id]
    assert [r.id for r in list_rules(fake_index)] == [second.id]


def test_a_pin_must_name_stories_of_the_index(fake_index: Path) -> None:
    with pytest.raises(ArticleNotFound):
        add_rule(fake_index, Rule.pin("a1", "no-such-story"))
    with pytest.raises(ArticleNotFound):
        add_rule(fake_index, Rule.pin("no-such-story", "a1"))
    add_rule(fake_index, Rule.block("not-yet-published"))  # a legal hold may come before the story


def test_export_shows_the_rules(fake_index: Path, tmp_path: Path) -> None:
    add_rule(fake_index, Rule.pin("a1", "c1", 1, until=datetime.now(UTC) + timedelta(days=2)))
    add_rule(fake_index, Rule.block("a2"))
    with Recommender.open(fake_index) as rec:
        export_static(rec, tmp_path / "out", k=3)
        version = rec.index_version
    data = json.loads((tmp_path / "out" / "a1.json").read_text())
    assert [item["id"] for item in data["related"]][0] == "c1" and data["related"][0]["pinned"] is True
    assert "a2" not in [item["id"] for item in data["related"]] and data["index_version"] == version
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["rules"] == 2 and index["valid_until"].endswith("Z")  # re-export before the pin expires


# -- CLI ---------------------------------------------------------------------------------------------------------------
def cli(*args: str | Path) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def test_cli_pin_block_exclude_list_delete(fake_index: Path, fake: FakeEmbedder) -> None:
    pinned = cli("pin", "a1", "c1", "--position", "1", "--until", "7d", "--note", "explainer", "--index", fake_index)
    assert pinned.exit_code == 0 and pinned.stdout.startswith("rule 1: pin 'c1' at position 1 under 'a1' until ")
    assert "-- explainer" in pinned.stdout
    blocked = cli("block", "a2", "--index", fake_index, "--json")
    assert blocked.exit_code == 0 and json.loads(blocked.stdout)["description"] == "block 'a2' everywhere"
    excluded = cli("rule", "exclude", "--under-section", "sport", "--index", fake_index)
    assert excluded.stdout.strip() == "rule 3: show nothing under section 'sport'"
    listed = cli("rule", "list", "--index", fake_index, "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [1, 2, 3]
    shown = cli("similar", "a1", "-k", "3", "--index", fake_index, "--json")
    items = json.loads(shown.stdout)
    assert items[0]["id"] == "c1" and items[0]["pinned"] is True and "a2" not in [i["id"] for i in items]
    assert json.loads(cli("similar", "c2", "--index", fake_index, "--json").stdout) == []
    deleted = cli("rule", "delete", "1", "3", "--index", fake_index)
    assert deleted.exit_code == 0 and deleted.stdout.strip() == "2 rule(s) deleted: 1, 3"
    assert cli("rule", "list", "--index", fake_index).stdout.strip() == "rule 2: block 'a2' everywhere"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("pin", "a1", "a1"), 2, "cannot be pinned under itself"),
        (("pin", "a1", "nope"), 1, "article not found: 'nope'"),
        (("block", "a2", "--until", "2020-01-01"), 2, "is already past"),
        (("block", "a2", "--until", "soon"), 2, "is not a date"),
        (("rule", "exclude"), 2, "give --section or --tag"),
        (("rule", "exclude", "--section", "a", "--tag", "b"), 2, "not both"),
        (("rule", "delete", "42"), 1, "rule not found: 42"),
        (("rule", "delete"), 2, "give rule ids"),
    ],
)
def test_cli_refuses_bad_rules_in_one_line(fake_index: Path, args: tuple[str, ...], code: int, message: str) -> None:
    result = cli(*args, "--index", fake_index)
    assert result.exit_code == code and message in result.output
    assert cli("rule", "list", "--index", fake_index).stdout.strip() == "no rules"  # nothing was stored


# -- HTTP --------------------------------------------------------------------------------------------------------------
@pytest.fixture
def client(fake_index: Path, fake: FakeEmbedder) -> Iterator[TestClient]:
    service = Service(fake_index, embedder=fake, check_interval=0.02, autosave_seconds=0)
    with TestClient(create_app(service, Settings(api_key=KEY))) as c:
        yield c


def related_ids(client: TestClient, story: str, **params: object) -> list[str]:
    response = client.get(f"/v1/articles/{story}/related", params={"k": 5, **params})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["related"]]


def test_http_rules_apply_at_once_and_change_the_etag(client: TestClient) -> None:
    first = client.get("/v1/articles/a1/related", params={"k": 3})
    created = client.post("/v1/rules", json={"kind": "pin", "story": "a1", "target": "b1", "position": 2}, headers=AUTH)
    assert created.status_code == 201, created.text
    rule = created.json()["rule"]
    assert rule["id"] == 1 and rule["description"] == "pin 'b1' at position 2 under 'a1'" and rule["active"]
    after = client.get("/v1/articles/a1/related", params={"k": 3})
    assert (
        after.headers["etag"] != first.headers["etag"]
        and after.json()["index_version"] != first.json()["index_version"]
    )
    assert after.json()["related"][1] | {"score": 0} == {
        "id": "b1",
        "title": "Central bank raises interest rates",
        "url": "https://news.example/b1",
        "score": 0,
        "relevance": None,
        "published_at": "2024-02-01T08:00:00+00:00",
        "section": "business",
        "relation": "background",
        "pinned": True,
    }
    assert client.post("/v1/rules", json={"kind": "block", "target": "a2"}, headers=AUTH).status_code == 201
    assert "a2" not in related_ids(client, "a3") and "a2" not in related_ids(client, "a1")
    html = client.get("/v1/articles/a1/related.html", params={"k": 3}).text
    assert "https://news.example/a2" not in html and "https://news.example/b1" in html
    listed = client.get("/v1/rules", headers=AUTH).json()["rules"]
    assert [r["kind"] for r in listed] == ["pin", "block"]
    assert client.delete("/v1/rules/2", headers=AUTH).json()["status"] == "deleted"
    assert "a2" in related_ids(client, "a3")
    assert client.delete("/v1/rules/2", headers=AUTH).status_code == 404


def test_http_rules_need_the_key_and_good_values(client: TestClient) -> None:
    body = {"kind": "block", "target": "a2"}
    assert client.post("/v1/rules", json=body).status_code == 401
    assert client.get("/v1/rules").status_code == 401
    assert client.delete("/v1/rules/1", headers={"Authorization": "Bearer wrong"}).status_code == 401
    bad = client.post("/v1/rules", json={"kind": "pin", "story": "a1", "target": "a1"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidRule"
    unknown = client.post("/v1/rules", json={"kind": "pin", "story": "a1", "target": "zz"}, headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "ArticleNotFound"
    extra = client.post("/v1/rules", json={"kind": "block", "target": "a2", "colour": "red"}, headers=AUTH)
    assert extra.status_code == 422
    past = client.post("/v1/rules", json={**body, "until": "2001-01-01"}, headers=AUTH)
    assert past.status_code == 422 and "already past" in past.json()["error"]["message"]
    assert client.get("/v1/rules", headers=AUTH).json()["rules"] == []


def test_rules_from_another_process_reach_a_running_server(client: TestClient, fake_index: Path) -> None:
    """`recommender block` while the server runs: the server follows the catalog and applies it."""
    assert "a2" in related_ids(client, "a1")
    add_rule(fake_index, Rule.block("a2"))
    deadline = time.monotonic() + 5
    while "a2" in related_ids(client, "a1") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "a2" not in related_ids(client, "a1")


def test_rules_survive_new_stories(fake_index: Path, fake: FakeEmbedder) -> None:
    add_rule(fake_index, Rule.exclude(section="wire"))
    add_articles(
        fake_index, articles=[{"id": "w2", "title": "Flood river city rain", "body": "flood", "section": "wire"}]
    )
    with Recommender.open(fake_index) as rec:
        assert "w2" not in ids(rec, "a1", 7) and "w2" not in ids(rec, "a3", 7)
