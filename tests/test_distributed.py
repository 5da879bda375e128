"""Builds on Ray (``build --ray``): the same index as a local build, resumable, and a clear error without Ray.

Tests marked ``ray`` start a small local Ray (2 CPUs, a 100 MB object store) once for the module; workers are
separate processes, so they register the fake embedder by importing :mod:`tests.ray_fake` (``plugins``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recommender import BatchRejected, Recommender, build_index
from recommender.cli.app import app
from recommender.distributed import RayOptions, Shard, looks_like_address, normalise_address, plan_shards
from recommender.distributed.session import domain_error
from recommender.distributed.worker import _contains, hash_keys
from recommender.errors import DistributedError, ModelUnavailable
from recommender.ingest.sources import read_source
from tests import ray_fake
from tests.conftest import ROOT, SAMPLE, write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder
from tests.servers import free_port

HELPER = Path(__file__).with_name("cli_with_fake.py")
PLUGINS = (ray_fake.MODULE,)
runner = CliRunner()

HTML_PAGE = """<!doctype html><html lang="en"><head><title>{title} | News</title></head><body>
<nav>Home | World | Sport</nav><article><h1>{title}</h1>
<p>{body}</p><p>Reporters on the scene said more details would follow later in the day, and officials promised
an update in the evening after meeting with the people affected by the events described here.</p>
</article><footer>Copyright News Example.</footer></body></html>"""

FEED = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>News</title><link>https://news.example/</link>
<item><guid>https://news.example/feed/1</guid><title>Heavyweight champion retains his title</title>
<description>The champion stopped the challenger in the seventh round.</description></item>
<item><guid>https://news.example/feed/2</guid><title>Central bank holds rates</title>
<description>Interest rates stay where they are, the bank said.</description></item>
</channel></rss>"""


def sample_slice(folder: Path, n: int) -> Path:
    """The first ``n`` articles of the bundled sample, as a JSONL file."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:n]
    return write_jsonl(folder / f"sample-{n}.jsonl", [json.loads(line) for line in lines])


def mixed_sources(folder: Path) -> list[Path]:
    """120 articles of the bundled sample plus one SOURCE of every other kind, with rejections and a duplicate id."""
    bad = folder / "bad.jsonl"
    bad.write_bytes(
        b'{"id": "extra-1", "title": "Flood waters rise", "body": "Residents evacuated as the river rose."}\n'
        b'{"id": "extra-2", "title": \n'
        b"\n"
        b'{"id": "ecb-1_10ecb", "title": "A second article with an id the sample already has"}\n'
        b'{"id": "extra-3"}\n'
    )
    csv = folder / "export.csv"
    csv.write_text(
        'id,title,body,section\ncsv-1,Markets fall,"Stocks fell, bonds rose",business\ncsv-2,,,\n', encoding="utf-8"
    )
    feed = folder / "feed.rss"
    feed.write_text(FEED, encoding="utf-8")
    pages = folder / "pages"
    (pages / "2024").mkdir(parents=True)
    (pages / "2024" / "storm.html").write_text(
        HTML_PAGE.format(
            title="Storm closes the coast road", body="A winter storm closed the coast road and cut power to towns."
        ),
        encoding="utf-8",
    )
    (pages / "quake.html").write_text(
        HTML_PAGE.format(
            title="Earthquake shakes the island", body="A strong earthquake shook the island; no damage was reported."
        ),
        encoding="utf-8",
    )
    return [sample_slice(folder, 120), bad, csv, feed, pages]


def catalog_rows(index_dir: Path) -> dict[str, tuple[int, dict, np.ndarray]]:
    """``id -> (key, article dict, vector)`` of every article in an index."""
    with Recommender.open(index_dir) as rec:
        catalog = rec.store.catalog
        vectors = {int(k): v for keys, vs in catalog.iter_vectors() for k, v in zip(keys, vs, strict=True)}
        return {s.article.id: (s.key, s.article.to_dict(), vectors[s.key]) for s in catalog.iter_articles()}


def top3(index_dir: Path) -> dict[str, list[str]]:
    with Recommender.open(index_dir) as rec:
        return {s.article.id: rec.related(s.article.id, k=3).ids for s in rec.store.catalog.iter_articles()}


# -- without Ray: planning, addresses, errors, the CLI surface ------------------------------------------------------


def test_shards_read_back_exactly_what_the_whole_file_gives(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    lines = [json.dumps({"id": f"n{i}", "title": f"Story {i}"}) for i in range(20)]
    lines[0] = "\ufeff" + lines[0]  # a byte-order mark on line 1
    lines[5] = '{"id": "broken", '
    lines[9] = ""
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shards = plan_shards([src], shard_size=7)
    assert [(s.first_line, s.rows) for s in shards] == [(1, 7), (8, 7), (15, 6)]
    assert shards[-1].end == src.stat().st_size
    from_shards = [str(item) for shard in shards for item in Shard.from_json(shard.to_json()).read()]
    assert from_shards == [str(item) for item in read_source(src)]
    assert f"{src}:6: malformed JSON" in "\n".join(from_shards)


def test_other_sources_are_planned_whole_or_by_page(tmp_path: Path) -> None:
    sources = mixed_sources(tmp_path)[1:]
    shards = plan_shards(sources, shard_size=1)
    assert [s.kind for s in shards] == ["jsonl"] * 5 + ["file", "file", "html", "html"]
    assert [s.files for s in shards if s.kind == "html"] == [("2024/storm.html",), ("quake.html",)]
    with pytest.raises(Exception, match="no such file"):
        plan_shards([tmp_path / "missing.jsonl"])


@pytest.mark.parametrize(
    "value, ok",
    [
        ("local", True),
        ("auto", True),
        ("ray://head:10001", True),
        ("10.0.0.5:6379", True),
        ("head-node:6379", True),
        ("data/sample.jsonl", False),
        ("sample.jsonl", False),
        ("feeds", False),
    ],
)
def test_what_counts_as_a_ray_address(value: str, ok: bool) -> None:
    assert looks_like_address(value) is ok
    if ok:
        assert normalise_address(value) == value
    else:
        with pytest.raises(DistributedError, match="not a Ray address"):
            normalise_address(value)
    assert normalise_address(None) == "local"


def test_known_hash_keys_are_checked_exactly() -> None:
    hashes = [f"{i:016x}" + "f" * 48 for i in (1, 5, 2**63 + 9, 2**60)]  # the key is the first 16 hex digits
    known = np.sort(hash_keys(hashes[:3]))
    assert _contains(known, hash_keys(hashes)).tolist() == [True, True, True, False]
    assert _contains(np.zeros(0, dtype=np.uint64), hash_keys(hashes)).tolist() == [False] * 4


def test_a_workers_domain_error_comes_back_as_itself() -> None:
    class FakeRayTaskError(Exception):
        def __init__(self, cause: BaseException) -> None:
            super().__init__("ray::MapWorker failed\nTraceback ...")
            self.cause = cause

    original = ModelUnavailable("cannot load model 'nope': not found")
    wrapped = RuntimeError("dataset failed")
    wrapped.__cause__ = FakeRayTaskError(original)
    assert domain_error(wrapped) is original
    other = domain_error(RuntimeError("node died\nmore"))
    assert isinstance(other, DistributedError) and str(other) == "the Ray job failed: node died"


def test_without_the_ray_extra_build_ray_is_a_one_line_error(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like
    result = runner.invoke(
        app, ["build", str(articles_file), "--index", str(tmp_path / "i"), "--ray", "--model", FAKE_MODEL]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: building on Ray needs the ray extra: pip install 'recommender[ray]'"
    ]
    assert not (tmp_path / "i").exists() and fake.calls == []
    with pytest.raises(DistributedError, match=r"pip install 'recommender\[ray\]'"):
        build_index([articles_file], tmp_path / "i", ray_address="auto")


@pytest.mark.parametrize(
    "args, address, workers, sources",
    [
        (["S", "--ray"], "local", None, ["S"]),
        (["--ray", "S"], "local", None, ["S"]),
        (["S", "--ray", "auto"], "auto", None, ["S"]),
        (["S", "--ray=ray://head:10001"], "ray://head:10001", None, ["S"]),
        (["S", "T", "--ray", "--ray-workers", "3"], "local", 3, ["S", "T"]),
        (["S"], None, None, ["S"]),
    ],
)
def test_cli_ray_option_takes_an_optional_address(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    address: str | None,
    workers: int | None,
    sources: list[str],
) -> None:
    from recommender import writer

    seen: dict = {}

    def fake_build(srcs: list[Path], index_dir: Path, **kwargs: object) -> writer.WriteReport:
        seen.update(kwargs, sources=[p.name for p in srcs])
        return writer.WriteReport()

    monkeypatch.setattr(writer, "build_index", fake_build)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["build", *args, "--index", "idx"])
    assert result.exit_code == 0, result.output
    assert seen["sources"] == sources and seen.get("ray_address") == address
    assert (seen["ray_options"].workers if address else None) == workers


@pytest.mark.ray
def test_an_unreachable_cluster_is_a_quick_one_line_error(tmp_path: Path, articles_file: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = runner.invoke(app, ["build", str(articles_file), "--ray", address, "--index", str(tmp_path / "i")])
    assert result.exit_code == 1 and time.monotonic() - started < 30
    assert result.output.strip().splitlines() == [
        f"Error: cannot connect to the Ray cluster at {address}: Connection refused"
    ]
    assert not (tmp_path / "i").exists()


def test_cli_ray_workers_needs_ray(tmp_path: Path, articles_file: Path) -> None:
    result = runner.invoke(app, ["build", str(articles_file), "--ray-workers", "2", "--index", str(tmp_path / "i")])
    assert result.exit_code == 2 and "--ray-workers needs --ray" in result.output


# -- on a local Ray ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small local Ray for the module; yields the folder where its workers log what they embed."""
    import ray

    log_dir = tmp_path_factory.mktemp("embedded")
    env = {"PYTHONPATH": str(ROOT), "FAKE_EMBED_LOG": str(log_dir), "HF_HUB_OFFLINE": "1"}
    ray.init(
        num_cpus=2,
        object_store_memory=100 * 1024**2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level="warning",
        runtime_env={"env_vars": env},
    )
    try:
        yield log_dir
    finally:
        ray.shutdown()


@pytest.fixture
def embed_log(ray_local: Path) -> Path:
    for path in ray_local.glob("embedded-*.txt"):
        path.unlink()
    return ray_local


def options(**kwargs: object) -> RayOptions:
    return RayOptions(plugins=PLUGINS, **{"shard_size": 40, **kwargs})  # type: ignore[arg-type]


@pytest.mark.ray
def test_ray_build_is_the_same_index_as_a_local_build(tmp_path: Path, fake: FakeEmbedder, embed_log: Path) -> None:
    sources = mixed_sources(tmp_path)
    local = build_index(sources, tmp_path / "local", model=FAKE_MODEL)
    in_this_process = fake.embedded
    on_ray = build_index(sources, tmp_path / "ray", model=FAKE_MODEL, ray_address="local", ray_options=options())
    assert fake.embedded == in_this_process  # the driver embeds nothing itself
    assert (on_ray.added, on_ray.skipped, on_ray.embedded) == (local.added, local.skipped, local.embedded)
    assert [str(r) for r in on_ray.rejected] == [str(r) for r in local.rejected]
    assert len(local.rejected) == 4 and local.added == 120 + 6
    embedded = ray_fake.embedded_hashes(embed_log)
    assert len(embedded) == len(set(embedded))  # no text embedded twice
    # the one text embedded but not kept: a later article with an id first seen in another shard
    assert len(embedded) == on_ray.embedded + 1
    a, b = catalog_rows(tmp_path / "local"), catalog_rows(tmp_path / "ray")
    assert a.keys() == b.keys()
    for article_id, (key, data, vector) in a.items():
        assert b[article_id][:2] == (key, data)  # same keys (source order), same fields
        np.testing.assert_allclose(b[article_id][2], vector, atol=1e-6)
    assert top3(tmp_path / "ray") == top3(tmp_path / "local")
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["build"]["method"] == "ray" and manifest["build"]["workers"] == 2
    assert manifest["build"]["embedded"] == on_ray.embedded
    assert manifest["build"]["shards"] == 8 + 4  # 127 articles: shards of 16 (four per worker), 4 other SOURCEs
    assert json.loads((tmp_path / "local" / "manifest.json").read_text())["build"] == {"method": "local"}
    with Recommender.open(tmp_path / "ray") as rec, Recommender.open(tmp_path / "local") as local_rec:
        assert (rec.info()["built_with"], local_rec.info()["built_with"]) == ("ray (2 workers)", "local")


@pytest.mark.ray
def test_ray_rebuild_embeds_only_what_changed(tmp_path: Path, fake: FakeEmbedder, embed_log: Path) -> None:
    src = sample_slice(tmp_path, 60)
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    index_dir = tmp_path / "index"
    first = build_index([src], index_dir, model=FAKE_MODEL, ray_address="local", ray_options=options())
    assert first.added == 60
    again = build_index([src], index_dir, ray_address="local", ray_options=options())
    assert (again.added, again.updated, again.skipped, again.embedded) == (0, 0, 60, 0)
    rows[3]["body"] += " Update: more to follow."  # text change: embedded again
    rows[7]["section"] = "sport"  # metadata only: updated, not embedded
    write_jsonl(src, rows)
    for path in embed_log.glob("embedded-*.txt"):
        path.unlink()
    changed = build_index([src], index_dir, ray_address="local", ray_options=options())
    assert (changed.updated, changed.embedded) == (2, 1)
    with Recommender.open(index_dir) as rec:
        assert ray_fake.embedded_hashes(embed_log) == [rec.store.catalog.get(rows[3]["id"]).content_hash]
        assert rec.get(rows[7]["id"]).section == "sport"


@pytest.mark.ray
def test_texts_the_workers_leave_out_are_embedded_before_the_commit(
    tmp_path: Path, fake: FakeEmbedder, embed_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text whose key the workers take for already embedded (a 64-bit key shared with another text, or a vector
    another writer pruned meanwhile) is embedded by one more Ray task before the commit, never left out."""
    from recommender.distributed import driver
    from recommender.ingest.sources import read_source

    src = sample_slice(tmp_path, 20)
    hashes = [item.article.content_hash for item in read_source(src)]
    monkeypatch.setattr(driver, "known_hash_keys", lambda catalog: np.sort(hash_keys(hashes[:5])))
    report = build_index([src], tmp_path / "index", model=FAKE_MODEL, ray_address="local", ray_options=options())
    assert report.added == 20 and report.embedded == 20
    build = json.loads((tmp_path / "index" / "manifest.json").read_text())["build"]
    assert build["embedded"] == 15  # by the workers; the 5 left out were embedded by one more Ray task
    assert sorted(ray_fake.embedded_hashes(embed_log)) == sorted(hashes)  # the other 5 by the extra task
    local = build_index([src], tmp_path / "local", model=FAKE_MODEL)
    a, b = catalog_rows(tmp_path / "local"), catalog_rows(tmp_path / "index")
    for article_id, (_, _, vector) in a.items():
        np.testing.assert_allclose(b[article_id][2], vector, atol=1e-6)
    assert local.added == 20


@pytest.mark.ray
def test_ray_strict_refuses_before_embedding(tmp_path: Path, embed_log: Path) -> None:
    sources = mixed_sources(tmp_path)
    with pytest.raises(BatchRejected) as refused:
        build_index(
            sources, tmp_path / "index", model=FAKE_MODEL, strict=True, ray_address="local", ray_options=options()
        )
    assert len(refused.value.rejections) == 4
    assert ray_fake.embedded_hashes(embed_log) == []
    assert not (tmp_path / "index" / "manifest.json").exists()


@pytest.mark.ray
def test_ray_worker_errors_are_domain_errors(tmp_path: Path, articles_file: Path, embed_log: Path) -> None:
    with pytest.raises(ModelUnavailable, match="weights not installed"):
        build_index(
            [articles_file], tmp_path / "index", model=ray_fake.UNAVAILABLE, ray_address="local", ray_options=options()
        )
    assert not (tmp_path / "index" / "manifest.json").exists()


@pytest.mark.ray
def test_killed_ray_build_resumes_without_embedding_anything_twice(
    tmp_path: Path, fake: FakeEmbedder, embed_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kill -9`` of ``recommender build --ray`` (the driver and the local Ray it started) mid-way; run again."""
    sources = [
        write_jsonl(
            tmp_path / f"part-{part}.jsonl",
            [
                {"id": f"n{part}-{i}", "title": f"Story {i}", "body": f"word{part}x{i} other{i} thing{part}"}
                for i in range(100)
            ],
        )
        for part in range(6)
    ]  # twelve shards of 50 or so: each embedded after a 1 s delay, committed on arrival
    total = 600
    index_dir = tmp_path / "index"
    first_log = tmp_path / "first-run"
    first_log.mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        RECOMMENDER_PLUGINS=ray_fake.MODULE,
        FAKE_BATCH_DELAY="1",
        FAKE_EMBED_LOG=str(first_log),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HELPER),
            "build",
            *map(str, sources),
            "--index",
            str(index_dir),
            "--ray",
            "--model",
            FAKE_MODEL,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )  # its own process group: the driver and the Ray it starts
    try:
        committed = wait_for_vectors(index_dir / "catalog.sqlite", proc, timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert 0 < len(committed) < total, "the build was not killed mid-way"
    assert not (index_dir / "manifest.json").exists()  # no index was published
    assert committed <= set(ray_fake.embedded_hashes(first_log))  # what is kept was embedded by its workers

    monkeypatch.setenv("RECOMMENDER_PLUGINS", ray_fake.MODULE)
    result = runner.invoke(
        app, ["build", *map(str, sources), "--index", str(index_dir), "--ray", "--model", FAKE_MODEL, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == total
    again = ray_fake.embedded_hashes(embed_log)
    with sqlite3.connect(index_dir / "catalog.sqlite") as conn:
        stored = {r[0] for r in conn.execute("SELECT content_hash FROM vectors")}
    assert not committed & set(again), "a vector committed before the kill was embedded again"
    assert len(again) == len(set(again)) == report["embedded"] == total - len(committed)
    assert len(stored) == total
    with Recommender.open(index_dir) as rec:
        assert rec.info()["articles"] == total and rec.related("n0-5", k=3).ids


def wait_for_vectors(catalog: Path, proc: subprocess.Popen[bytes], timeout: float) -> set[str]:
    """The content hashes committed so far, once there are some (and the build is still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        if catalog.exists():
            try:
                with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as conn:
                    hashes = {r[0] for r in conn.execute("SELECT content_hash FROM vectors")}
            except sqlite3.OperationalError:
                hashes = set()
            if hashes:
                os.killpg(proc.pid, signal.SIGSTOP)  # freeze it: what is committed now is what the kill leaves
                with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as conn:
                    return {r[0] for r in conn.execute("SELECT content_hash FROM vectors")}
        time.sleep(0.05)
    raise AssertionError("no vectors were committed in time")


@pytest.mark.ray
@pytest.mark.integration
def test_ray_build_with_the_real_model_matches_a_local_build(tmp_path: Path, embed_log: Path) -> None:
    """The packaged model on torch fp32, where a text's vector does not depend on the batch it is embedded in.

    (onnx-int8 quantises activations per batch, so two builds that batch texts differently differ by about
    0.005 in cosine whatever runs them; measured in docs/scaling.md.)
    """
    src = sample_slice(tmp_path, 64)
    build_index([src], tmp_path / "local", backend="torch")
    report = build_index([src], tmp_path / "ray", backend="torch", ray_address="local")
    assert report.added == 64
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["backend"] == "torch"
    a, b = catalog_rows(tmp_path / "local"), catalog_rows(tmp_path / "ray")
    assert a.keys() == b.keys()
    for article_id, (_, _, vector) in a.items():
        np.testing.assert_allclose(b[article_id][2], vector, atol=1e-5)  # fp32 noise of another batch shape
    local_top, ray_top = top3(tmp_path / "local"), top3(tmp_path / "ray")
    same = sum(local_top[i] == ray_top[i] for i in local_top)
    assert same >= 0.95 * len(local_top), f"top-3 differs for {len(local_top) - same} of {len(local_top)} articles"
