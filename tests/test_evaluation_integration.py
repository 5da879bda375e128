"""The default pipeline against the TF-IDF baseline on the bundled ECB+ sample, with the real packaged model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recommender.evaluation.evaluate import LabelledSet, index_lists, load_labelled, tfidf_lists
from recommender.ranking.policy import RankingPolicy
from recommender.writer import apply_policy
from tests.conftest import SAMPLE

pytestmark = pytest.mark.integration


def test_default_pipeline_beats_tfidf_on_the_ecbplus_sample(real_index: Path, tmp_path: Path) -> None:
    articles = load_labelled(SAMPLE)
    labelled = LabelledSet(articles, "event")
    ours = labelled.score(index_lists(real_index, labelled.query_ids))
    baseline = labelled.score(tfidf_lists(articles))
    dense_index = tmp_path / "dense"
    shutil.copytree(real_index, dense_index)
    apply_policy(dense_index, RankingPolicy(keyword_weight=0.0))
    dense_only = labelled.score(index_lists(dense_index, labelled.query_ids))
    assert ours.copy_rate == 0.0
    assert ours.p_at_5 > baseline.p_at_5 and ours.ndcg_at_5 > baseline.ndcg_at_5, (ours, baseline)
    assert ours.mrr >= baseline.mrr, (ours, baseline)
    assert ours.p_at_5 > dense_only.p_at_5, (ours, dense_only)  # the keyword blend is what wins
