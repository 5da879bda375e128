"""Impressions and clicks: the event shape, the durable store, variant assignment, the report, POST /v1/events and
`recommender report` (fake embedder)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recommender.articles import MAX_ID_CHARS
from recommender.cli.app import app
from recommender.events.log import EventLog, EventLogClosed, EventReader, segments
from recommender.events.report import Rate, compare, exposure, summarise
from recommender.events.schema import MAX_BATCH, MAX_TAG_CHARS, EventError, parse_batch, parse_event
from recommender.events.variants import assign_variant
from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import Settings
from tests.fakes import FakeEmbedder

SITE = "https://site.example"


# -- the event shape ---------------------------------------------------------------------------------------------------
def test_events_are_checked_at_the_door() -> None:
    seen = parse_event({"type": "impression", "story": "a1", "items": ["a2", "a3"], "version": "v1", "view": "x"})
    assert seen.items == ("a2", "a3") and seen.variant is None
    click = parse_event({"type": "click", "story": "a1", "target": "a3", "position": 2, "variant": "b"})
    record = click.record("2026-11-30T12:00:00Z")
    assert record == {
        "ts": "2026-11-30T12:00:00Z",
        "type": "click",
        "story": "a1",
        "variant": "b",
        "target": "a3",
        "position": 2,
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be a JSON object"),
        ({"type": "scroll", "story": "a1"}, "type must be one of"),
        ({"type": "click", "target": "a2", "position": 1}, "story is missing"),
        ({"type": "click", "story": "a1", "target": "a2", "position": 0}, "position must be"),
        ({"type": "click", "story": "a1", "target": "a2", "position": True}, "position must be"),
        ({"type": "click", "story": "a1", "position": 1}, "target is missing"),
        ({"type": "impression", "story": "a1", "items": []}, "items must be a list of 1 to 50"),
        ({"type": "impression", "story": "a1", "items": [1, 2]}, "items must be story ids"),
        ({"type": "impression", "story": "a1", "items": ["a2"], "position": 1}, "not target or position"),
        ({"type": "click", "story": "a1", "target": "a2", "position": 1, "ip": "1.2.3.4"}, "unknown field(s) ip"),
        ({"type": "click", "story": "a1", "target": "a2", "position": 1, "view": "v" * 129}, "view must be"),
    ],
)
def test_bad_events_say_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(EventError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_event(raw)


def test_a_bad_event_is_refused_alone_and_a_bad_batch_whole() -> None:
    good = {"type": "click", "story": "a1", "target": "a2", "position": 1}
    batch = parse_batch(json.dumps({"events": [good, {"type": "nope"}, good]}).encode())
    assert len(batch.events) == 2 and batch.rejected == [(1, "type must be one of impression, click")]
    for body, message in [
        (b"not json", "not JSON"),
        (b'{"events": []}', "at least one event"),
        (b"[1]", "body must be"),
        (json.dumps({"events": [good] * (MAX_BATCH + 1)}).encode(), "at most 100"),
    ]:
        with pytest.raises(EventError, match=message):
            parse_batch(body)


_ODD_VALUES = [
    None, True, False, -1, 0, 1, 2, 50, 51, 10**30, 1.0, 2.5, "", "a", "impression", "click", "\u00e9t\u00e9",
    "a" * MAX_TAG_CHARS, "b" * (MAX_TAG_CHARS + 1), "x" * MAX_ID_CHARS, "y" * (MAX_ID_CHARS + 1), {"k": "v"},
    [], ["a2"], ["a2", ""], ["a2", 3], [None], ["z" * MAX_ID_CHARS], ["z" * (MAX_ID_CHARS + 1)], ["a9"] * 50,
    ["a9"] * 51,
]  # fmt: skip
_FIELDS = ["type", "story", "version", "variant", "view", "items", "target", "position", "ip"]
_GOOD = {
    "impression": {"type": "impression", "story": "a1", "items": ["a2", "a3"]},
    "click": {"type": "click", "story": "a1", "target": "a2", "position": 2},
}


def _one_by_one(raw: list[object]) -> tuple[list[object], list[tuple[int, str]]]:
    kept, refused = [], []
    for n, event in enumerate(raw):
        try:
            kept.append(parse_event(event))
        except EventError as exc:
            refused.append((n, str(exc)))
    return kept, refused


def _same_answers(raw: list[object]) -> None:
    kept, refused = _one_by_one(raw)
    batch = parse_batch(json.dumps({"events": raw}).encode())
    assert (batch.events, batch.rejected) == (kept, refused), raw
    assert all(type(e.position) is int for e in batch.events if e.type == "click")  # never 1.0 or True


def test_a_batch_gets_the_answers_its_events_get_one_by_one() -> None:
    """parse_batch checks a batch of good events in one pass (pydantic-core); whatever an event holds, the batch
    must keep exactly the events parse_event keeps and refuse the others with its reasons. Every field of either
    kind set to each odd value or left out, alone and beside a good event."""
    for good in _GOOD.values():
        for name in _FIELDS:
            for value in [*_ODD_VALUES, "leave out"]:
                event = {k: v for k, v in good.items() if k != name}
                if value != "leave out":
                    event[name] = value
                _same_answers([event])
                _same_answers([good, event, good])
    _same_answers([*_GOOD.values()] * (MAX_BATCH // 2))


@st.composite
def _events(draw: st.DrawFn) -> object:
    good = dict(_GOOD[draw(st.sampled_from(["impression", "click"]))])
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            good.pop(name, None)
        else:
            good[name] = draw(st.sampled_from(_ODD_VALUES))
    return good if draw(st.integers(0, 20)) else draw(st.sampled_from(_ODD_VALUES))  # now and then no object


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_events(), min_size=1, max_size=4))
def test_a_batch_of_mixed_events_gets_the_same_answers(raw: list[object]) -> None:
    _same_answers(raw)


# -- the store ---------------------------------------------------------------------------------------------------------
def test_the_store_keeps_every_acknowledged_event_across_rotations(tmp_path: Path) -> None:
    store = EventLog(tmp_path / "events", segment_bytes=400)
    threads = [
        threading.Thread(
            target=lambda n=n: [store.append([{"ts": "t", "type": "click", "n": n, "m": m}]) for m in range(25)]
        )
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    with pytest.raises(EventLogClosed):
        store.append([{"late": True}])
    stored = list(EventReader(tmp_path / "events"))
    assert sorted((r["n"], r["m"]) for r in stored) == [(n, m) for n in range(4) for m in range(25)]
    assert len(segments(tmp_path / "events")) > 3 and store.stored == 100  # rotated by size, nothing lost
    for n in range(4):  # each writer's events in the order they were acknowledged
        assert [r["m"] for r in stored if r["n"] == n] == list(range(25))


def test_a_new_segment_starts_at_utc_midnight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recommender.events.log as event_log

    clock = [datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp()]
    monkeypatch.setattr(event_log, "time", type("Clock", (), {"time": staticmethod(lambda: clock[0])}))
    store = EventLog(tmp_path)
    store.append([{"n": 1}])
    clock[0] += 0.5
    store.append([{"n": 2}])  # the same day: the same segment
    clock[0] += 0.5
    store.append([{"n": 3}])  # midnight
    store.close()
    names = [p.name for p in segments(tmp_path)]
    assert len(names) == 2 and names[0].startswith("events-20261130T235959") and "20261201T000000" in names[1]
    assert [r["n"] for r in EventReader(tmp_path)] == [1, 2, 3]


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = EventLog(tmp_path)
    store.append([{"ts": "2026-11-30T10:00:00Z", "type": "click"}, {"ts": "2026-11-30T12:00:00Z", "type": "click"}])
    store.close()
    with segments(tmp_path)[0].open("ab") as handle:
        handle.write(b'{"ts": "2026-11-30T13:00:00Z", "ty')  # a crash in the middle of a write
    reader = EventReader(tmp_path)
    assert len(list(reader)) == 2 and reader.bad_lines == 1
    since = EventReader(tmp_path, since=datetime(2026, 11, 30, 11, tzinfo=UTC))
    assert [r["ts"] for r in since] == ["2026-11-30T12:00:00Z"]


# -- A/B assignment ----------------------------------------------------------------------------------------------------
def test_variant_assignment_is_stable_even_and_order_free() -> None:
    readers = [f"reader-{n}" for n in range(9000)]
    first = [assign_variant(r, ["a", "b", "c"]) for r in readers]
    assert first == [assign_variant(r, ["c", "a", "b", "a"]) for r in readers]  # order and repeats do not matter
    shares = Counter(first)
    assert set(shares) == {"a", "b", "c"} and all(abs(count / 9000 - 1 / 3) < 0.02 for count in shares.values())
    reshuffled = [assign_variant(r, ["a", "b", "c"], experiment="2027-01") for r in readers]
    assert 0.55 < sum(x != y for x, y in zip(first, reshuffled, strict=True)) / 9000 < 0.78  # about 2/3 move
    assert assign_variant("anyone", ["only"]) == "only"
    with pytest.raises(ValueError):
        assign_variant("anyone", [])


# -- the report --------------------------------------------------------------------------------------------------------
def wilson(clicked: int, views: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, written out (checks the library call)."""
    p = clicked / views
    centre = (p + z * z / (2 * views)) / (1 + z * z / views)
    half = z * math.sqrt(p * (1 - p) / views + z * z / (4 * views * views)) / (1 + z * z / views)
    return centre - half, centre + half


def gini(values: list[float]) -> float:
    """Mean absolute difference over twice the mean (the textbook definition)."""
    n, mean = len(values), sum(values) / len(values)
    return sum(abs(a - b) for a in values for b in values) / (2 * n * n * mean)


def impression(view: str, variant: str | None, story: str, *items: str) -> dict[str, object]:
    out: dict[str, object] = {"ts": "2026-11-30T10:00:00Z", "type": "impression", "story": story, "view": view}
    return out | ({"variant": variant} if variant else {}) | {"items": list(items)}


def click(view: str, variant: str | None, story: str, target: str, position: int) -> dict[str, object]:
    out: dict[str, object] = {"ts": "2026-11-30T10:01:00Z", "type": "click", "story": story, "view": view}
    return out | ({"variant": variant} if variant else {}) | {"target": target, "position": position}


def test_report_counts_views_clicks_positions_sections_and_variants() -> None:
    events = [
        impression("v1", "a", "s1", "x", "y", "z"),
        click("v1", "a", "s1", "y", 2),
        click("v1", "a", "s1", "y", 2),  # the same link twice: one clicked view
        impression("v2", "a", "s2", "x", "y"),
        impression("v3", "b", "s1", "x"),
        click("v3", "b", "s1", "x", 1),
        impression("v4", None, "s3", "x", "y", "z"),  # no variant asked for: the default
        impression("v4", None, "s3", "x", "y", "z"),  # reported twice: counted once
        click("v9", "a", "s1", "x", 1),  # its impression never arrived
    ]
    sections = {"s1": "local", "s2": "sport", "x": "local", "y": "local", "z": "sport"}
    report = summarise(events, sections, archive_size=10)
    assert (report.impressions, report.clicks, report.orphan_clicks) == (4, 4, 1)
    assert report.overall == Rate(2, 4)
    assert report.by_position == {1: Rate(1, 4), 2: Rate(1, 3), 3: Rate(0, 2)}
    assert report.by_section == {"local": Rate(2, 2), "(none)": Rate(0, 1), "sport": Rate(0, 1)}
    assert report.by_variant == {"a": Rate(1, 2), "b": Rate(1, 1), "default": Rate(0, 1)}
    low, high = report.overall.interval or (0, 0)
    assert (round(low, 6), round(high, 6)) == tuple(round(v, 6) for v in wilson(2, 4))
    assert report.exposure.shown == 3 and report.exposure.share_shown == 0.3
    assert report.exposure.gini == pytest.approx(gini([4, 3, 2] + [0] * 7))
    assert report.exposure.top_decile_share == pytest.approx(4 / 9)
    assert report.exposure.curve[0] == (0.0, 0.0) and report.exposure.curve[-1] == (1.0, 1.0)
    data = report.to_dict()
    assert data["by_position"]["2"] == {
        "views": 3,
        "clicked": 1,
        "ctr": round(1 / 3, 6),
        "ci_low": round(wilson(1, 3)[0], 6),
        "ci_high": round(wilson(1, 3)[1], 6),
        "clicks": 2,
    }
    assert "Too early" in data["comparison"]["verdict"] and data["comparison"]["p_value"] is None


def test_verdicts_on_variants() -> None:
    clear = compare({"a": Rate(30, 300), "b": Rate(60, 300)})
    assert clear.significant and clear.test == "fisher_exact" and clear.p_value is not None and clear.p_value < 0.001
    assert clear.verdict.startswith("Significant") and "variant 'b' is clicked more than 'a' (20.0% vs 10.0%" in (
        clear.verdict
    )
    close = compare({"a": Rate(10, 100), "b": Rate(12, 100)})
    assert not close.significant and close.verdict.startswith("No significant difference")
    three = compare({"a": Rate(10, 200), "b": Rate(30, 200), "c": Rate(12, 200)})
    assert three.test == "chi2" and three.significant
    assert compare({"a": Rate(3, 10)}).verdict == "Only one variant ('a') ran: there is nothing to compare."
    assert compare({"a": Rate(3, 10), "b": Rate(40, 150)}).verdict.startswith("Too early to tell: variant(s) a")


def test_exposure_extremes() -> None:
    even = exposure({f"s{n}": 5 for n in range(10)}, 10)
    assert even.gini == pytest.approx(0.0) and even.share_shown == 1.0
    one = exposure({"s0": 50}, 10)
    assert one.gini == pytest.approx(0.9) and one.shown == 1 and one.top_decile_share == 1.0  # n-1/n: the maximum
    assert exposure({}, 10).gini is None and exposure({}, 0).archive == 0


# -- HTTP --------------------------------------------------------------------------------------------------------------
def make_client(index_dir: Path, fake: FakeEmbedder, **settings: object) -> tuple[TestClient, Service]:
    service = Service(index_dir, embedder=fake, check_interval=0.02, autosave_seconds=0)
    config = Settings(**{"api_key": "k", "cors_origins": (SITE,), **settings})  # type: ignore[arg-type]
    return TestClient(create_app(service, config)), service


def body(*events: dict[str, object]) -> str:
    return json.dumps({"events": list(events)})


SEEN = {"type": "impression", "story": "a1", "items": ["a2", "a3"], "version": "v", "view": "p1"}
FOLLOWED = {"type": "click", "story": "a1", "target": "a3", "position": 2, "version": "v", "view": "p1"}


def test_post_events_stores_them_before_answering(fake_index: Path, fake: FakeEmbedder) -> None:
    client, _ = make_client(fake_index, fake)
    with client:
        response = client.post(
            "/v1/events", content=body(SEEN, FOLLOWED), headers={"Content-Type": "text/plain;charset=UTF-8"}
        )
        assert response.status_code == 200 and response.json() == {"accepted": 2, "rejected": []}
        stored = list(EventReader(fake_index / "events"))  # durable before the answer
        assert [r["type"] for r in stored] == ["impression", "click"]
        assert set(stored[0]) == {"ts", "type", "story", "version", "view", "items"}  # no address, no agent
        partial = client.post("/v1/events", content=body(SEEN, {"type": "nope"}), headers={"Origin": SITE})
        assert partial.status_code == 200 and partial.json()["rejected"][0]["index"] == 1
        assert partial.headers["access-control-allow-origin"] == SITE
        metrics = client.get("/metrics").text
        assert 'recommender_events_total{type="impression"} 2.0' in metrics


@pytest.mark.parametrize(
    ("content", "headers", "status", "kind"),
    [
        (body({"type": "nope"}), {}, 422, "invalid_events"),
        ("{", {}, 422, "invalid_events"),
        ("x" * 70_000, {}, 413, "payload_too_large"),
        (
            '{"events": [{"type": "click", "story": "a\\ud800", "target": "a2", "position": 1}]}',
            {},
            422,
            "invalid_events",
        ),
        (body(SEEN), {"Origin": "https://elsewhere.example"}, 403, "forbidden_origin"),
    ],
)
def test_post_events_refusals(
    fake_index: Path, fake: FakeEmbedder, content: str, headers: dict[str, str], status: int, kind: str
) -> None:
    client, _ = make_client(fake_index, fake)
    with client:
        response = client.post("/v1/events", content=content, headers=headers)
        assert response.status_code == status and response.json()["error"]["type"] == kind
        assert list(EventReader(fake_index / "events")) == []


@pytest.mark.parametrize(
    ("allowed", "origin", "allow_origin", "vary"),
    [
        ((SITE,), SITE, SITE, "Origin"),
        (("*",), SITE, "*", None),
        ((SITE,), "http://testserver", None, "Origin"),  # the server's own page: allowed, no CORS header needed
        ((SITE,), None, None, None),
    ],
)
def test_post_events_cors_headers_as_the_cors_middleware_writes_them(
    fake_index: Path,
    fake: FakeEmbedder,
    allowed: tuple[str, ...],
    origin: str | None,
    allow_origin: str | None,
    vary: str | None,
) -> None:
    """The endpoint answers outside the CORS middleware, so it writes what that middleware would."""
    client, _ = make_client(fake_index, fake, cors_origins=allowed)
    with client:
        response = client.post("/v1/events", content=body(SEEN), headers={"Origin": origin} if origin else {})
        assert response.status_code == 200
        assert response.headers.get("access-control-allow-origin") == allow_origin
        assert response.headers.get("vary") == vary
        read = client.get("/v1/articles/a1/related", headers={"Origin": origin} if origin else {})
        assert read.headers.get("access-control-allow-origin") == allow_origin  # the same as a read gets


def test_post_events_is_rate_limited_per_client(fake_index: Path, fake: FakeEmbedder) -> None:
    client, _ = make_client(fake_index, fake, events_rate=3)
    with client:
        codes = [client.post("/v1/events", content=body(SEEN)).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        assert client.get("/v1/articles/a1/related").status_code == 200  # reads are not limited
        time.sleep(1.1)
        assert client.post("/v1/events", content=body(SEEN)).status_code == 200


def test_events_never_wait_for_the_index(fake_index: Path, fake: FakeEmbedder) -> None:
    """A write holding the index (here: its lock, held on purpose) does not hold up event reports."""
    client, service = make_client(fake_index, fake)
    with client:
        release = threading.Event()
        held = threading.Event()

        def hold() -> None:
            with service._lock:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(5)
        try:
            started = time.monotonic()
            assert client.post("/v1/events", content=body(SEEN)).status_code == 200
            assert time.monotonic() - started < 2
        finally:
            release.set()
            holder.join()


def test_variant_by_reader_is_stable_and_in_the_answer(fake_index: Path, fake: FakeEmbedder) -> None:
    client, _ = make_client(fake_index, fake)
    with client:
        by_reader = client.get("/v1/articles/a1/related", params={"reader": "r-123"}).json()
        assert by_reader["variant"] == "default"  # the one variant of an index without named policies
        assert "variant" not in client.get("/v1/articles/a1/related").json()
        unknown = client.get("/v1/articles/a1/related", params={"variant": "zz"})
        assert unknown.status_code == 422 and "not one of default" in unknown.json()["error"]["message"]


# -- the command -------------------------------------------------------------------------------------------------------
def test_report_command_json_html_and_since(fake_index: Path, fake: FakeEmbedder, tmp_path: Path) -> None:
    store = EventLog(fake_index / "events")
    old = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.append(
        [
            impression("v1", None, "a1", "a2", "a3") | {"ts": old},
            impression("v2", None, "b1", "b2"),
            click("v2", None, "b1", "b2", 1),
            impression("v3", None, "c1", "c2"),
        ]
    )
    store.close()
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--index", str(fake_index), "--json", "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["impressions"] == 3 and data["clicks"] == 1 and data["overall"]["clicked"] == 1
    assert data["by_section"]["business"]["clicked"] == 1 and data["by_section"]["local"]["views"] == 1
    assert data["exposure"] | {"curve": []} == {
        "archive": 8,
        "shown": 4,
        "share_shown": 0.5,
        "gini": data["exposure"]["gini"],
        "top_decile_share": 0.25,
        "curve": [],
    }
    page = (tmp_path / "r.html").read_text("utf-8")
    assert page.count("<svg") == 2 and "<script" not in page and "http://" not in page.replace("http://www.w3", "")
    recent = json.loads(runner.invoke(app, ["report", "--index", str(fake_index), "--json", "--since", "7d"]).stdout)
    assert recent["impressions"] == 2
    text = runner.invoke(app, ["report", "--index", str(fake_index)])
    assert text.exit_code == 0 and "overall" in text.stdout and "Only one variant ('default') ran" in text.stdout
    bad = runner.invoke(app, ["report", "--index", str(fake_index), "--since", "lately"])
    assert bad.exit_code == 2 and "is not a date" in bad.output


def test_the_documented_route_answers_alike_without_the_fast_path(tmp_path: Path) -> None:
    """/openapi.json documents POST /v1/events through the route; mounted alone, the route does the same work."""
    from fastapi import FastAPI

    from recommender.serving.http.events import EventIntake, build_events_router
    from recommender.serving.http.metrics import Metrics

    store = EventLog(tmp_path / "events")
    bare = FastAPI()
    bare.include_router(build_events_router(EventIntake(store, Settings(), Metrics())))
    with TestClient(bare) as client:
        assert client.post("/v1/events", content=body(SEEN, FOLLOWED)).json() == {"accepted": 2, "rejected": []}
        assert client.post("/v1/events", content="x" * 70_000).status_code == 413
        assert "/v1/events" in client.get("/openapi.json").json()["paths"]
    store.close()
    assert len(list(EventReader(tmp_path / "events"))) == 2


def test_readers_are_split_between_named_variants_with_their_own_lists(fake_index: Path, fake: FakeEmbedder) -> None:
    """A site names a second policy (`policy set --variant b`); the API assigns readers by their anonymous value
    and answers each from that variant's precomputed lists."""
    from recommender import Recommender

    runner = CliRunner()
    named = runner.invoke(app, ["policy", "set", "--variant", "b", "keyword_weight=0", "--index", str(fake_index)])
    assert named.exit_code == 0 and "variant 'b' changed" in named.stdout, named.output
    assert (
        runner.invoke(app, ["policy", "set", "--variant", "default", "k=1", "--index", str(fake_index)]).exit_code == 2
    )
    client, service = make_client(fake_index, fake)
    with client, Recommender.open(fake_index) as rec:
        assert service.variants() == ("default", "b")
        readers = {f"r{n}": assign_variant(f"r{n}", ["default", "b"]) for n in range(40)}
        assert set(readers.values()) == {"default", "b"}
        for reader, expected in list(readers.items())[:8]:
            answer = client.get("/v1/articles/a1/related", params={"k": 5, "reader": reader}).json()
            assert answer["variant"] == expected
            own = rec.related("a1", 5, variant="b" if expected == "b" else "")
            assert [i["id"] for i in answer["related"]] == own.ids
            again = client.get("/v1/articles/a1/related", params={"k": 5, "reader": reader}).json()
            assert again["variant"] == expected  # stable
        forced = client.get("/v1/articles/a1/related", params={"variant": "b"}).json()
        assert forced["variant"] == "b"
        for line in [
            {"type": "impression", "story": "a1", "items": ["a2"], "view": "x1", "variant": "b"},
            {"type": "click", "story": "a1", "target": "a2", "position": 1, "view": "x1", "variant": "b"},
            {"type": "impression", "story": "a1", "items": ["a2"], "view": "x2", "variant": "default"},
        ]:
            assert client.post("/v1/events", content=body(line)).status_code == 200
    data = json.loads(runner.invoke(app, ["report", "--index", str(fake_index), "--json"]).stdout)
    assert data["by_variant"]["b"]["clicked"] == 1 and data["by_variant"]["default"]["views"] == 1
    removed = runner.invoke(app, ["policy", "remove-variant", "b", "--index", str(fake_index)])
    assert removed.exit_code == 0 and removed.stdout.strip() == "variant 'b' removed"


def test_a_segment_deleted_while_serving_is_started_anew(tmp_path: Path) -> None:
    """A site's clean-up removes the event folder while the server runs: later events are not written into a
    deleted file."""
    import shutil

    store = EventLog(tmp_path / "events")
    store.append([{"ts": "t", "n": 1}])
    shutil.rmtree(tmp_path / "events")
    store.append([{"ts": "t", "n": 2}])
    store.close()
    assert [r["n"] for r in EventReader(tmp_path / "events")] == [2]
