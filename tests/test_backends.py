"""Embedding backends (torch / onnx / onnx-int8), batching and threads, the memory budget, recall in `info`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recommender import Recommender, add_articles, build_index
from recommender.cli.app import app
from recommender.embedding import DEFAULT_MODEL, available_threads, load_embedder
from recommender.embedding.base import plan_batches
from recommender.embedding.packaged import resolve_model_path
from recommender.errors import ModelUnavailable
from recommender.storage import vector_index
from recommender.storage.store import Manifest
from tests.conftest import ARTICLES, SAMPLE
from tests.fakes import FAKE_MODEL, FakeEmbedder

runner = CliRunner()


# -- batching and threads (pure) ----------------------------------------------------------------------------------
def test_plan_batches_sorts_by_length_and_keeps_the_token_budget() -> None:
    lengths = [5, 256, 12, 256, 3, 100, 256, 40]
    batches = plan_batches(lengths, max_tokens=512, max_batch=4)
    flat = np.concatenate(batches).tolist()
    assert sorted(flat) == list(range(len(lengths)))  # every text exactly once
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first: little padding
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) * max(lengths[i] for i in batch) <= 512 or len(batch) == 1


def test_plan_batches_gives_short_texts_bigger_batches_and_long_ones_their_own() -> None:
    short = plan_batches([10] * 100, max_tokens=8192, max_batch=64)
    assert [len(b) for b in short] == [64, 36]
    huge = plan_batches([10_000, 10_000], max_tokens=8192)
    assert [len(b) for b in huge] == [1, 1]
    assert plan_batches([]) == []


def test_threads_follow_affinity_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOMMENDER_THREADS", raising=False)
    assert available_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("RECOMMENDER_THREADS", "3")
    assert available_threads() == 3
    monkeypatch.setenv("RECOMMENDER_THREADS", "many")
    with pytest.raises(ModelUnavailable, match="RECOMMENDER_THREADS"):
        available_threads()


def test_mean_pooling_ignores_padding() -> None:
    from recommender.embedding.onnx import pool

    hidden = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    assert np.allclose(pool(hidden, mask), [[2**-0.5, 2**-0.5]])
    assert np.allclose(pool(hidden, mask, "cls"), [[1.0, 0.0]])


# -- choosing a backend ---------------------------------------------------------------------------------------------
def test_unknown_backend_is_a_clear_error(fake: FakeEmbedder) -> None:
    with pytest.raises(ModelUnavailable, match="unknown backend 'gpu'.*torch, onnx, onnx-int8"):
        load_embedder(FAKE_MODEL, "gpu")


def test_index_records_the_backend_that_made_it(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> None:
    result = runner.invoke(
        app,
        ["build", str(articles_file), "--index", str(tmp_path / "i"), "--model", FAKE_MODEL, "--backend", "onnx-int8"],
    )
    assert result.exit_code == 0, result.output
    assert Manifest.load(tmp_path / "i").backend == "onnx-int8"
    info = runner.invoke(app, ["info", "--index", str(tmp_path / "i"), "--json"])
    assert json.loads(info.stdout)["backend"] == "onnx-int8"
    bad = runner.invoke(
        app, ["build", str(articles_file), "--index", str(tmp_path / "j"), "--model", FAKE_MODEL, "--backend", "tpu"]
    )
    assert bad.exit_code == 1 and "unknown backend 'tpu'" in bad.output


def test_backend_comes_from_the_environment(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOMMENDER_BACKEND", "onnx")
    result = runner.invoke(app, ["build", str(articles_file), "--index", str(tmp_path / "i"), "--model", FAKE_MODEL])
    assert result.exit_code == 0, result.output
    assert Manifest.load(tmp_path / "i").backend == "onnx"


# -- memory budget and recall -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GB", 4_000_000_000),
        ("4 gb", 4_000_000_000),
        ("512MiB", 512 * 2**20),
        ("1.5G", 1_500_000_000),
        ("2GiB", 2 * 2**30),
        ("123456", 123_456),
        ("10kb", 10_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert vector_index.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "4XB", "-1GB", "0", "four gigabytes"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        vector_index.parse_size(text)


def test_budget_picks_a_compressed_index_and_is_remembered(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path
) -> None:
    index_dir = tmp_path / "i"
    # 8 articles x 256-d floats is about 8 KB: a 3 KB budget only fits one byte per dimension (ivf-sq8)
    result = runner.invoke(
        app, ["build", str(articles_file), "--index", str(index_dir), "--model", FAKE_MODEL, "--max-memory", "3KB"]
    )
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(index_dir)
    assert (manifest.index_type, manifest.max_memory_bytes) == ("ivf-sq8", 3000)
    assert manifest.recall_at_10 is not None  # measured against exact search for an approximate index
    add_articles(index_dir, articles=[{"id": "n1", "title": "Flood barrier holds", "body": "The flood barrier held."}])
    assert Manifest.load(index_dir).index_type == "ivf-sq8"  # a later save keeps the budget
    with Recommender.open(index_dir) as rec:
        assert "a2" in rec.related("a1", k=3).ids
    bad = runner.invoke(
        app,
        ["build", str(articles_file), "--index", str(tmp_path / "j"), "--model", FAKE_MODEL, "--max-memory", "lots"],
    )
    assert bad.exit_code == 2 and "not a size" in bad.output


def test_info_shows_recall_of_an_approximate_index(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vector_index, "EXACT_SEARCH_LIMIT", 2)  # force HNSW on a small archive
    build_index([articles_file], tmp_path / "i", model=FAKE_MODEL)
    result = runner.invoke(app, ["info", "--index", str(tmp_path / "i")])
    line = next(row for row in result.stdout.splitlines() if row.startswith("recall_at_10"))
    assert float(line.split()[-1]) > 0.9
    assert "hnsw" in result.stdout


# -- the onnx export (real packaged model) -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def _top(vectors: np.ndarray, n: int) -> list[list[int]]:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return [list(np.argsort(-row, kind="stable")[:n]) for row in sims]


@pytest.mark.integration
def test_onnx_backends_give_the_same_top_results_as_torch(onnx_cache: Path) -> None:
    from recommender.articles import validate_article
    from recommender.embedding.onnx import OnnxEmbedder

    texts = [validate_article(dict(a), "t").text for a in ARTICLES if a["id"] != "a1-wire"]
    torch_vectors = load_embedder(DEFAULT_MODEL, "torch").embed(texts)
    for backend, least in (("onnx", 0.9999), ("onnx-int8", 0.98), ("onnx-int8-192", 0.98)):
        embedder = OnnxEmbedder(DEFAULT_MODEL, backend, cache_dir=onnx_cache)
        assert (embedder.name, embedder.backend, embedder.dimension) == (DEFAULT_MODEL, backend, 384)
        vectors = embedder.embed(texts)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert float(np.min(np.sum(vectors * torch_vectors, axis=1))) >= least
        assert _top(vectors, 2) == _top(torch_vectors, 2), backend
        assert embedder.embed([]).shape == (0, 384)


@pytest.mark.integration
def test_onnx_batch_budget_changes_batching_not_vectors(onnx_cache: Path) -> None:
    """The token budget (MAX_BATCH_TOKENS) is a speed knob: padding and batch size leave the vectors as they are."""
    from recommender.articles import validate_article
    from recommender.embedding.onnx import SESSION_CONFIG, OnnxEmbedder

    texts = [validate_article(dict(a), "t").text for a in ARTICLES] + ["Flood", "Central bank " * 60]
    # int8 quantises activations per batch tensor, so batch mates move a vector a little (cosine ~0.99 on "Flood").
    for backend, least in (("onnx", 0.99999), ("onnx-int8", 0.98)):
        one_by_one = OnnxEmbedder(DEFAULT_MODEL, backend, cache_dir=onnx_cache, max_tokens=1)  # a text per batch
        default = OnnxEmbedder(DEFAULT_MODEL, backend, cache_dir=onnx_cache)
        big = OnnxEmbedder(DEFAULT_MODEL, backend, cache_dir=onnx_cache, max_tokens=8192)  # all in one padded batch
        reference = one_by_one.embed(texts)
        for embedder in (default, big):
            cosines = np.sum(embedder.embed(texts) * reference, axis=1)
            assert float(cosines.min()) >= least, (backend, embedder.max_tokens)
        options = default._session.get_session_options()  # noqa: SLF001 - the settings that make it fast
        for key, value in SESSION_CONFIG.items():
            assert options.get_session_config_entry(key) == value


@pytest.mark.integration
def test_onnx_file_is_made_once_cached_and_remade_when_missing(onnx_cache: Path) -> None:
    from recommender.embedding.onnx import OnnxEmbedder, cached_onnx_path, describe_model, local_model_folder

    model = describe_model(local_model_folder(DEFAULT_MODEL), label=DEFAULT_MODEL)
    assert (model.pooling, model.max_seq_length) == ("mean", 256)  # as the model's sentence-transformers config says
    path = cached_onnx_path(model, "onnx-int8", onnx_cache)
    first = OnnxEmbedder(DEFAULT_MODEL, "onnx-int8", cache_dir=onnx_cache)
    assert first.path == path and path.is_relative_to(onnx_cache)
    assert not Path(resolve_model_path(DEFAULT_MODEL)).joinpath(path.name).exists()  # never next to the weights
    stamp = path.stat().st_mtime_ns
    OnnxEmbedder(DEFAULT_MODEL, "onnx-int8", cache_dir=onnx_cache)
    assert path.stat().st_mtime_ns == stamp  # cached: not made again
    path.unlink()
    again = OnnxEmbedder(DEFAULT_MODEL, "onnx-int8", cache_dir=onnx_cache)
    assert path.exists() and again.embed(["flood"]).shape == (1, 384)
    assert not list(path.parent.glob(".*.tmp-*"))


@pytest.mark.integration
def test_onnx_cache_location_follows_the_environment(
    tmp_path: Path, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.embedding.onnx import cached_onnx_path, describe_model, local_model_folder, onnx_cache_dir

    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    assert onnx_cache_dir() == tmp_path / "cache" / "onnx"
    model = describe_model(local_model_folder(DEFAULT_MODEL), label=DEFAULT_MODEL)
    made = cached_onnx_path(model, "onnx-int8", onnx_cache)
    if made.exists():  # reuse the session's export instead of making another one
        target = cached_onnx_path(model, "onnx-int8")
        target.parent.mkdir(parents=True)
        shutil.copy(made, target)
    embedder = load_embedder(DEFAULT_MODEL, "onnx-int8")
    assert Path(embedder.path).is_relative_to(tmp_path / "cache" / "onnx")  # type: ignore[attr-defined]


@pytest.mark.integration
def test_build_and_query_with_onnx_int8_match_torch(tmp_path: Path, onnx_cache: Path) -> None:
    """Part of the sample built with torch and with onnx-int8: the same lists for most stories."""
    from recommender.embedding.onnx import OnnxEmbedder

    rows = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines()[:80]]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    int8 = OnnxEmbedder(DEFAULT_MODEL, "onnx-int8", cache_dir=onnx_cache)
    report = build_index([subset], tmp_path / "int8", backend="onnx-int8", embedder=int8)
    assert report.manifest is not None and report.manifest.backend == "onnx-int8"
    torch_report = build_index([subset], tmp_path / "torch", backend="torch")
    assert torch_report.manifest is not None and torch_report.manifest.backend == "torch"
    with Recommender.open(tmp_path / "torch") as ref, Recommender.open(tmp_path / "int8", embedder=int8) as rec:
        ids = [r["id"] for r in rows]
        same_first = sum(ref.related(i, k=1).ids == rec.related(i, k=1).ids for i in ids)
        assert same_first / len(ids) > 0.8
        # (a paraphrase: a headline of the archive, word for word, is a near copy of the query for one backend
        # and just below the copy threshold for the other)
        query = "The young actress has entered a rehabilitation clinic in California, her spokesman said"
        ours, theirs = rec.related_to_text(query, k=3).ids, ref.related_to_text(query, k=3).ids
        # near-ties among reports of one story may swap places; the stories shown are the same
        assert ours[0] in theirs and theirs[0] in ours


@pytest.mark.integration
def test_onnx_int8_192_reads_the_first_192_tokens(onnx_cache: Path) -> None:
    """The short-window backend runs the int8 file (no second export) and embeds a long article as its first
    192 word pieces: the rest of the text does not move the vector; the full-window backend sees it."""
    from recommender.embedding.onnx import OnnxEmbedder, cached_onnx_path, describe_model, local_model_folder

    short = OnnxEmbedder(DEFAULT_MODEL, "onnx-int8-192", cache_dir=onnx_cache, max_tokens=1)
    full = OnnxEmbedder(DEFAULT_MODEL, "onnx-int8", cache_dir=onnx_cache, max_tokens=1)
    model = describe_model(local_model_folder(DEFAULT_MODEL), label=DEFAULT_MODEL)
    assert short.path == full.path == cached_onnx_path(model, "onnx-int8-192", onnx_cache)
    assert (short.window, full.window) == (192, 256)
    lead = "Flood waters rise in the river city as heavy rain continues. " * 16  # over 192 word pieces, under 256
    tail = "The central bank raised interest rates to fight inflation; markets fell. " * 16
    a, b = short.embed([lead, lead + tail])
    assert float(a @ b) > 0.999
    a, b = full.embed([lead, lead + tail])
    assert float(a @ b) < 0.99
