"""Every route and error status through FastAPI's TestClient (fake embedder)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recommender import add_articles, build_index
from recommender.serving.http.app import create_app
from recommender.serving.service import BUSY, Service
from recommender.settings import Settings
from recommender.storage.store import Manifest
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def make_client(index_dir: Path, fake: FakeEmbedder, **config: object) -> TestClient:
    service = Service(index_dir, embedder=fake, check_interval=0.02, autosave_seconds=0)
    cfg = Settings(**{"api_key": KEY, "cors_origins": ["https://site.example"], **config})  # type: ignore[arg-type]
    return TestClient(create_app(service, cfg))


@pytest.fixture
def client(fake_index: Path, fake: FakeEmbedder) -> Iterator[TestClient]:
    with make_client(fake_index, fake) as c:
        yield c


def ids(response: object) -> list[str]:
    return [item["id"] for item in response.json()["related"]]  # type: ignore[attr-defined]


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``check`` until it holds (the service follows other processes' writes every ``check_interval``)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_related_by_id(client: TestClient) -> None:
    r = client.get("/v1/articles/a1/related", params={"k": 2})
    assert r.status_code == 200
    data = r.json()
    assert data["article_id"] == "a1" and data["model"] == FAKE_MODEL and data["index_version"]
    assert len(data["related"]) == 2 and {"a1", "a1-wire"}.isdisjoint(ids(r))
    for item in data["related"]:
        # every story of this set is dated, so each link says how it relates in time (issue 12)
        assert set(item) == {"id", "title", "url", "score", "relevance", "published_at", "section", "relation"}
        assert item["relation"] in ("same-day", "follow-up", "background")
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["etag"] == f'W/"{data["index_version"]}"'
    again = client.get("/v1/articles/a1/related", params={"k": 2}, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_first_requests_answered_before_routing_match_the_route(client: TestClient) -> None:
    """A plain first request (no query, or only k) skips FastAPI's routing; its answer must be the route's."""
    for article_id in ("a1", "b2", "c1"):
        plain = client.get(f"/v1/articles/{article_id}/related?k=3")
        routed = client.get(f"/v1/articles/{article_id}/related?k=3&exclude=")  # any other parameter: the route
        assert plain.status_code == routed.status_code == 200
        assert plain.json() == routed.json()
        assert plain.headers["etag"] == routed.headers["etag"]
        assert plain.headers["content-type"].startswith("application/json")
    default = client.get("/v1/articles/a1/related")
    assert len(default.json()["related"]) == 5 or default.json()["short"]
    # a first request from a client that already holds this version's answer: 304, as the route answers
    conditional = client.get("/v1/articles/a2/related?k=4", headers={"If-None-Match": default.headers["etag"]})
    assert conditional.status_code == 304 and conditional.headers["etag"] == default.headers["etag"]


def test_first_request_during_a_write_waits_off_the_event_loop(fake_index: Path, fake: FakeEmbedder) -> None:
    """The lookup runs on the event loop only when the index is free and a stored list answers it; while a
    write holds the index, or when the list would need a live search, it is not done there (and the answer is
    still the right one, from a worker thread)."""
    service = Service(fake_index, embedder=fake, check_interval=0.02, autosave_seconds=0)
    with TestClient(create_app(service, Settings(api_key=KEY))) as c:
        expected = service.related("a1", 3)
        assert service.related_nowait("a1", 3) == expected
        with service._lock:  # a write in progress, seen from another thread
            seen: list[object] = []
            worker = threading.Thread(target=lambda: seen.append(service.related_nowait("a1", 3)))
            worker.start()
            worker.join()
            assert seen == [BUSY]
        assert c.get("/v1/articles/a1/related?k=3").json()["related"] == [s.to_dict() for s in expected.related]
        # a first request while another thread holds the lock for longer than the loop's short waits: answered
        # from a worker thread once the lock is free
        holding = threading.Event()

        def write_for_a_while() -> None:
            with service._lock:
                holding.set()
                time.sleep(0.3)

        writer = threading.Thread(target=write_for_a_while)
        writer.start()
        holding.wait()
        started = time.monotonic()
        answer = c.get("/v1/articles/a1/related?k=2")
        writer.join()
        assert answer.status_code == 200 and time.monotonic() - started >= 0.2
        assert answer.json()["related"] == [s.to_dict() for s in service.related("a1", 2).related]
        catalog = service._current().store.catalog
        catalog.conn.execute("DELETE FROM related WHERE key = ?", (catalog.key_of("a2"),))
        assert service.related_nowait("a2", 3) is None  # no stored list: that takes a search
        live = service._current().related("a2", 3)
        assert c.get("/v1/articles/a2/related?k=3").json()["related"] == [s.to_dict() for s in live.items]


def test_related_errors(client: TestClient) -> None:
    r = client.get("/v1/articles/nope/related")
    assert r.status_code == 404 and r.json()["error"]["type"] == "ArticleNotFound"
    for k in (0, 51, "x"):
        r = client.get("/v1/articles/a1/related", params={"k": k})
        assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request"
    assert client.get("/v1/articles/a1/related", params={"since": "not-a-date"}).status_code == 422


def test_filters_return_k_when_k_match(client: TestClient) -> None:
    r = client.get("/v1/articles/a1/related", params={"k": 2, "section": "sport"})
    assert set(ids(r)) == {"c1", "c2"} or r.json()["short"]
    r = client.get("/v1/articles/a1/related", params={"k": 2, "section": "local"})
    assert set(ids(r)) == {"a2", "a3"}
    r = client.get("/v1/articles/a1/related", params=[("k", "3"), ("exclude", "a2,a3"), ("exclude", "b1")])
    assert {"a2", "a3", "b1"}.isdisjoint(ids(r))
    r = client.get("/v1/articles/c1/related", params={"since": "2024-01-01", "k": 5})
    assert all(item["published_at"] >= "2024" for item in r.json()["related"])


def test_ids_with_slashes(fake_index: Path, fake: FakeEmbedder) -> None:
    add_articles(
        fake_index,
        articles=[{"id": "https://news.example/x/1", "title": "Flood river city residents evacuated", "body": "rain"}],
    )
    with make_client(fake_index, fake) as c:
        r = c.get("/v1/articles/https%3A%2F%2Fnews.example%2Fx%2F1/related")
        assert r.status_code == 200 and r.json()["article_id"] == "https://news.example/x/1"


def test_html_fragment(client: TestClient) -> None:
    r = client.get("/v1/articles/a1/related.html", params={"k": 2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<nav class="also-read" aria-label="Also read">' in r.text
    assert 'href="https://news.example/a2"' in r.text and r.headers["etag"]


def test_post_related_text_and_url(client: TestClient) -> None:
    r = client.post("/v1/related", json={"text": "central bank interest rates inflation", "k": 2})
    assert r.status_code == 200 and set(ids(r)) == {"b1", "b2"} and r.json()["article_id"] is None
    r = client.post("/v1/related", json={"url": "http://www.news.example/b1/?utm_source=x", "k": 1})
    assert r.status_code == 200 and r.json()["article_id"] == "b1" and ids(r) == ["b2"]
    assert client.post("/v1/related", json={"url": "https://news.example/unknown"}).status_code == 404
    for bad in ({}, {"text": "a", "url": "https://news.example/b1"}, {"text": "  "}, {"text": "a", "k": 99}):
        r = client.post("/v1/related", json=bad)
        assert r.status_code == 422 and "error" in r.json()
    r = client.post("/v1/related", json={"text": "x" * 20_001})
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]


def test_put_enters_neighbours_lists_at_once_and_delete_leaves_them(client: TestClient) -> None:
    before = client.get("/v1/articles/a2/related", params={"k": 3})
    new = {
        "title": "River city flood evacuated residents rain homes",
        "body": "Flood waters river city residents evacuated homes heavy rain overnight.",
        "url": "https://news.example/a4",
        "section": "local",
        "published_at": "2024-03-06T08:00:00Z",
    }
    r = client.put("/v1/articles/a4", json=new, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "added"
    after = client.get("/v1/articles/a2/related", params={"k": 3})
    assert "a4" in ids(after) and after.headers["etag"] != before.headers["etag"]
    assert client.put("/v1/articles/a4", json=new, headers=AUTH).json()["status"] == "unchanged"
    edited = dict(new, section="archive")
    assert client.put("/v1/articles/a4", json=edited, headers=AUTH).json()["status"] == "updated"
    r = client.delete("/v1/articles/a4", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    for article in ARTICLES:
        assert "a4" not in ids(client.get(f"/v1/articles/{article['id']}/related", params={"k": 10}))
    assert client.delete("/v1/articles/a4", headers=AUTH).status_code == 404


def test_writes_need_the_key(client: TestClient) -> None:
    article = {"title": "t", "body": "b"}
    assert client.put("/v1/articles/z", json=article).status_code == 401
    assert client.put("/v1/articles/z", json=article, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.put("/v1/articles/z", json=article, headers={"Authorization": KEY}).status_code == 401
    r = client.delete("/v1/articles/a1")
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    assert client.get("/v1/articles/a1/related").status_code == 200  # reads stay public


def test_writes_disabled_without_a_configured_key(fake_index: Path, fake: FakeEmbedder) -> None:
    with make_client(fake_index, fake, api_key=None) as c:
        assert c.put("/v1/articles/z", json={"title": "t"}, headers=AUTH).status_code == 403


def test_only_a_server_that_takes_writes_loads_the_language_model_at_start(
    fake_index: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PUT without a language detects it, so a server with a key loads the model before the first one; a
    read-only server (no key) never needs it and does not hold its 10 MB."""
    import recommender.serving.service as service_module

    warmed: list[bool] = []
    monkeypatch.setattr(service_module, "warm_up_in_background", lambda: warmed.append(True))
    Service(Settings(index=str(fake_index)), embedder=fake).close()
    assert warmed == []
    Service(Settings(index=str(fake_index), api_key=KEY), embedder=fake).close()
    assert warmed == [True]


def test_put_validation(client: TestClient) -> None:
    r = client.put("/v1/articles/z", json={"title": ""}, headers=AUTH)
    assert r.status_code == 422 and "neither title nor body" in r.json()["error"]["message"]
    r = client.put("/v1/articles/z", json={"id": "other", "title": "t"}, headers=AUTH)
    assert r.status_code == 422 and "differs" in r.json()["error"]["message"]
    r = client.put("/v1/articles/z", json={"title": "t", "published_at": "soon"}, headers=AUTH)
    assert r.status_code == 422
    r = client.put("/v1/articles/z", content=b"not json", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422


def test_body_size_limit(fake_index: Path, fake: FakeEmbedder) -> None:
    with make_client(fake_index, fake, max_body_bytes=1000) as c:
        r = c.put("/v1/articles/z", json={"title": "t", "body": "x" * 5000}, headers=AUTH)
        assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["articles"] == len(ARTICLES)
    client.get("/v1/articles/a1/related")
    text = client.get("/metrics").text
    assert (
        'recommender_http_requests_total{method="GET",route="/v1/articles/{article_id:path}/related",status="200"}'
        in text
    )
    assert "recommender_http_request_seconds_bucket" in text
    assert f"recommender_index_articles {float(len(ARTICLES))}" in text
    assert "recommender_index_info{index_version=" in text


def test_not_ready_without_an_index(tmp_path: Path, fake: FakeEmbedder) -> None:
    with make_client(tmp_path / "missing", fake) as c:
        assert c.get("/livez").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and "no index" in r.json()["error"]["message"]
        r = c.get("/v1/articles/a1/related")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_overload_is_shed_with_503(fake_index: Path, fake: FakeEmbedder) -> None:
    with make_client(fake_index, fake, max_in_flight=0) as c:
        r = c.get("/v1/articles/a1/related")
        assert r.status_code == 503 and r.json()["error"]["type"] == "Overloaded"
        assert c.get("/livez").status_code == 200


def test_cors_allow_list(client: TestClient) -> None:
    ok = client.get("/v1/articles/a1/related", headers={"Origin": "https://site.example"})
    assert ok.headers["access-control-allow-origin"] == "https://site.example"
    other = client.get("/v1/articles/a1/related", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_allow_list_on_cached_answers_and_preflights(client: TestClient) -> None:
    first = client.get("/v1/articles/a2/related", headers={"Origin": "https://evil.example"})
    cached = client.get("/v1/articles/a2/related", headers={"Origin": "https://site.example"})
    assert first.status_code == cached.status_code == 200 and first.content == cached.content
    assert (
        cached.headers["access-control-allow-origin"] == "https://site.example" and "Origin" in cached.headers["vary"]
    )
    preflight = {"Origin": "https://site.example", "Access-Control-Request-Method": "GET"}
    assert client.options("/v1/articles/a2/related", headers=preflight).status_code == 200


def test_no_cors_origins_no_cors_headers(fake_index: Path, fake: FakeEmbedder) -> None:
    """Without ``cors_origins`` no other site's page may read answers: none carries a CORS header (nor ``Vary:
    Origin``: the answer is the same whatever the origin), and a preflight is not granted."""
    with make_client(fake_index, fake, cors_origins=[]) as c:
        for _ in range(2):  # made, then replayed from the cache
            read = c.get("/v1/articles/a1/related", headers={"Origin": "https://site.example"})
            assert read.status_code == 200 and read.json()["related"]
            assert not any(name.startswith("access-control-") for name in read.headers) and "vary" not in read.headers
        preflight = {"Origin": "https://site.example", "Access-Control-Request-Method": "GET"}
        denied = c.options("/v1/articles/a1/related", headers=preflight)
        assert denied.status_code >= 400 and "access-control-allow-origin" not in denied.headers


def test_widget_demo_and_openapi(client: TestClient) -> None:
    js = client.get("/widget.js")
    assert (
        js.status_code == 200
        and "data-also-read" in js.text
        and js.headers["content-type"].startswith("text/javascript")
    )
    page = client.get("/demo", params={"id": "a1"})
    assert 'data-article-id="a1"' in page.text and '<script src="/widget.js"' in page.text
    schema = client.get("/openapi.json").json()
    assert "/v1/articles/{article_id}/related" in schema["paths"] and "/v1/related" in schema["paths"]


def test_writes_from_another_process_are_picked_up(client: TestClient, fake_index: Path) -> None:
    assert "b3" not in ids(client.get("/v1/articles/b1/related", params={"k": 3}))  # now cached
    add_articles(
        fake_index, articles=[{"id": "b3", "title": "Central bank interest rates inflation markets", "body": "rates"}]
    )
    assert eventually(lambda: "b3" in ids(client.get("/v1/articles/b1/related", params={"k": 3})))
    # followed from the event loop: no polling thread takes the GIL from the requests
    assert not [t for t in threading.enumerate() if t.name == "recommender-follow"]


def test_the_service_looks_for_changes_cheaply_and_follows_what_changed(
    fake_index: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(fake_index, embedder=fake, check_interval=0.02, autosave_seconds=0)
    service.load()
    try:
        assert service.looks_changed()  # the first look: nothing seen yet
        service.follow()
        assert not service.looks_changed()
        loads = []
        real_load = Manifest.load
        monkeypatch.setattr(Manifest, "load", lambda folder: loads.append(folder) or real_load(folder))
        for _ in range(5):
            assert not service.looks_changed()
        assert loads == []  # an unchanged manifest is not parsed again
        add_articles(fake_index, articles=[{"id": "b3", "title": "Central bank rates inflation", "body": "rates"}])
        holder = threading.Thread(target=lambda: service._lock.acquire() and (time.sleep(0.2), service._lock.release()))
        holder.start()
        time.sleep(0.05)
        assert not service.looks_changed()  # the index lock is held: no waiting, the next look sees it
        holder.join()
        assert service.looks_changed()
        before = service._current().index_version
        service.follow()
        assert service._current().index_version != before
        assert "b3" in [item["id"] for item in service.related("b1", 3).body("b1")["related"]]
        assert not service.looks_changed()
        manifest = Manifest.load(fake_index)  # a rebuilt index: a new build time in a new manifest file
        manifest.built_at = "2099-01-01T00:00:00+00:00"
        manifest.save(fake_index)
        assert service.looks_changed()
        assert len(loads) >= 1
    finally:
        service.close()


def test_rebuilt_index_is_loaded_in_the_background_and_a_broken_one_is_not(
    client: TestClient, fake_index: Path, tmp_path: Path
) -> None:
    extra = write_jsonl(
        tmp_path / "extra.jsonl", ARTICLES + [{"id": "c3", "title": "Football cup final team goal", "body": "stadium"}]
    )
    time.sleep(1.1)  # a new built_at (second resolution)
    build_index([extra], fake_index)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = client.get("/v1/articles/c1/related", params={"k": 3})
        assert r.status_code == 200  # answered throughout
        if "c3" in ids(r):
            break
        time.sleep(0.05)
    assert "c3" in ids(r)
    # a rebuild whose FAISS file is damaged: keep serving the previous index
    time.sleep(1.1)
    build_index([extra], fake_index, model=None)  # nothing changed: no new build time
    manifest = Manifest.load(fake_index)
    manifest.built_at = "2099-01-01T00:00:00+00:00"
    manifest.index_sha256 = "0" * 64
    manifest.save(fake_index)

    def kept() -> bool:
        assert client.get("/v1/articles/c1/related").status_code == 200
        return "kept the previous index" in (client.get("/readyz").json()["last_error"] or "")

    assert eventually(kept)


def test_api_key_is_compared_in_constant_time(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from recommender.serving.http import auth as api  # the one place the key is checked (writes and rules)

    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(api.hmac, "compare_digest", spy)
    assert client.delete("/v1/articles/a1", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert calls == [(b"nope", KEY.encode())]


def test_lists_are_ordered_by_relevance(client: TestClient) -> None:
    for article_id in ("a1", "b1", "c1"):
        items = client.get(f"/v1/articles/{article_id}/related", params={"k": 7}).json()["related"]
        relevance = [item["relevance"] for item in items]
        assert all(r is not None for r in relevance) and relevance == sorted(relevance, reverse=True)


def test_remembered_query_models_answer_each_query_string_as_its_own(client: TestClient) -> None:
    """The list routes remember a validated query per query string: repeats, other strings, bad values and more
    strings than are remembered are each answered as the first time."""
    from recommender.serving.http.querymodel import REMEMBERED_QUERIES

    first = {k: ids(client.get(f"/v1/articles/a1/related?k={k}")) for k in (1, 2)}
    assert len(first[1]) == 1 and len(first[2]) == 2 and first[2][:1] == first[1]
    for _ in range(2):
        for k in (2, 1):
            assert ids(client.get(f"/v1/articles/a1/related?k={k}")) == first[k]
        assert client.get("/v1/articles/a1/related?k=0").status_code == 422
    excluded = ids(client.get("/v1/articles/a1/related", params={"k": 2, "exclude": first[2][0]}))
    assert first[2][0] not in excluded and first[2][1] in excluded
    for n in range(REMEMBERED_QUERIES + 10):  # more than are remembered: the oldest are forgotten, not confused
        assert ids(client.get(f"/v1/articles/a2/related?k={1 + n % 2}&n={n}")) == ids(
            client.get(f"/v1/articles/a2/related?k={1 + n % 2}")
        )
    assert ids(client.get("/v1/articles/a1/related?k=2")) == first[2]


def test_fastapi_telemetry_only_where_opentelemetry_is_configured() -> None:
    """FastAPI's native OpenTelemetry checks the global providers on every request; it stays on (FastAPI's
    defaults) where the operator configures OpenTelemetry, and is off otherwise (metrics are Prometheus')."""
    from recommender.serving.http.app import TELEMETRY_OFF, fastapi_telemetry

    assert fastapi_telemetry({"PATH": "/usr/bin", "RECOMMENDER_K": "5"}) == TELEMETRY_OFF
    assert fastapi_telemetry({"OTEL_SERVICE_NAME": "recommender"}) is None
    assert fastapi_telemetry({"FASTAPI_OTEL_AUTO_CONFIGURE": "true"}) is None


def test_list_routes_are_matched_first(client: TestClient) -> None:
    """The list routes are most requests: no other route is tried before them, and the docs still answer."""
    paths = [getattr(route, "path", None) for route in client.app.router.routes]  # type: ignore[attr-defined]
    assert paths[:2] == ["/v1/articles/{article_id:path}/related", "/v1/articles/{article_id:path}/related.html"]
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200
    assert client.get("/v1/articles/a1/related.html").status_code == 200
