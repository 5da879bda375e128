"""Score ranking policies on every labelled set: how the defaults of the ranking policy are chosen.

Usage (from the repository root)::

    .venv/bin/python scripts/policy_sweep.py --grid keyword_weight=0.3,0.7 --grid time_weight=0,0.5
    .venv/bin/python scripts/policy_sweep.py --only allsides --base time_half_life_days=3 --grid time_weight=0.3,0.5

Each set's index is built once (embeddings cached per model, backend and text under ``$RECOMMENDER_CACHE``);
then every policy of the grid (the cross product of the ``--grid`` values over ``--base``) is applied to it --
every list recomputed, exactly as ``recommender policy set`` does -- and the lists a site would show are scored
with :mod:`recommender.evaluation` (P@5, MRR, nDCG@5 as in docs/evaluation.md). The first row of each set is the
base policy (the current defaults unless ``--base`` changes them). Prints one JSON object per (set, policy) and
a markdown table; the table is what docs/evaluation.md records, with the command. A set in several languages
(``--merge`` files into one archive) is also scored per language, with the share of links that cross languages.
"""

# ruff: noqa: T201 - a script prints its report
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender import Recommender, build_index  # noqa: E402
from recommender.embedding import DEFAULT_BACKEND, DEFAULT_MODEL  # noqa: E402
from recommender.evaluation.evaluate import LabelledSet, cached_embedder, load_labelled  # noqa: E402
from recommender.evaluation.metrics import MRR_DEPTH  # noqa: E402
from recommender.ranking.policy import RankingPolicy  # noqa: E402

#: (file under the data folder, label)
SETS = [
    ("allsides-dev.jsonl", "event"),
    ("ecbplus-events.jsonl", "event"),
    ("bbc-topics.jsonl", "topic"),
    ("masakhanews-eng.jsonl", "topic"),
    ("masakhanews-fra.jsonl", "topic"),
]


def grid(base: RankingPolicy, axes: list[str]) -> list[RankingPolicy]:
    """``base`` first, then every combination of the ``KEY=v1,v2`` axes applied to it."""
    keys, values = [], []
    for axis in axes:
        key, _, listed = axis.partition("=")
        keys.append(key.strip())
        values.append([v.strip() for v in listed.split(",") if v.strip()])
    out = [base]
    for combo in itertools.product(*values):
        policy = RankingPolicy.from_assignments([f"{k}={v}" for k, v in zip(keys, combo, strict=True)], base)
        if policy not in out:
            out.append(policy)
    return out


def by_language(articles: list, labelled: LabelledSet, lists: dict[str, list[str]]) -> dict[str, dict]:
    """For an archive in several languages: each language's queries scored alone, and the share of their links
    that point at a story in another language."""
    language = {a.id: a.language for a in articles}
    languages = sorted({v for v in language.values() if v})
    if len(languages) < 2:
        return {}
    out = {}
    for lang in languages:
        mine = {q: ids for q, ids in lists.items() if language.get(q) == lang}
        links = [i for ids in mine.values() for i in ids[:5]]
        crossing = sum(language.get(i) not in (lang, None) for i in links)
        out[lang] = {**labelled.score(mine).to_dict(), "cross_language": round(crossing / max(len(links), 1), 4)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--backend", default=DEFAULT_BACKEND)
    parser.add_argument("--base", action="append", default=[], metavar="KEY=VALUE", help="the first policy")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="an axis of the grid")
    parser.add_argument("--only", action="append", default=[], help="sets whose file name contains this")
    parser.add_argument("--file", action="append", default=[], type=Path, help="a labelled file (not in --data)")
    parser.add_argument(
        "--merge", action="append", default=[], metavar="A.jsonl+B.jsonl", help="files of --data in one archive"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    policies = grid(RankingPolicy.from_assignments(args.base), args.grid)
    embedder = cached_embedder(args.model, backend=args.backend)
    sets = [(args.data / name, label) for name, label in SETS if not args.only or any(o in name for o in args.only)]
    sets += [(path, None) for path in args.file]
    merged_dir = tempfile.TemporaryDirectory(prefix="recommender-sweep-merged-")
    for spec in args.merge:  # research-only data: merged into a temp file, never next to the repository
        target = Path(merged_dir.name) / ("+".join(Path(p).stem for p in spec.split("+")) + ".jsonl")
        with target.open("w", encoding="utf-8") as out:
            for part in spec.split("+"):
                out.write((args.data / part).read_text("utf-8"))
        sets.append((target, None))
    rows: list[str] = []
    for path, label in sets:
        if not path.exists():
            print(f"skipped: {path} not found", file=sys.stderr)
            continue
        articles = load_labelled(path)
        labelled = LabelledSet(
            articles, label or ("event" if any(a.metadata.get("event") for a in articles) else "topic")
        )
        with tempfile.TemporaryDirectory(prefix="recommender-sweep-") as tmp:
            index_dir = Path(tmp) / "index"
            build_index([path], index_dir, model=embedder.name, backend=embedder.backend, embedder=embedder)
            with Recommender.open(index_dir, embedder=embedder) as rec:
                for policy in policies:
                    started = time.monotonic()
                    rec.lists.refresh_all(policy)
                    lists = {q: rec.related(q, MRR_DEPTH).ids for q in labelled.query_ids}
                    s = labelled.score(lists)
                    changed = {k: v for k, v in policy.to_dict().items() if v != RankingPolicy().to_dict()[k]}
                    print(
                        json.dumps(
                            {
                                "set": path.name,
                                "policy": changed,
                                **s.to_dict(),
                                "seconds": round(time.monotonic() - started, 1),
                            }
                        ),
                        flush=True,
                    )
                    knobs = " ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"
                    rows.append(
                        f"| {path.stem} | {knobs} | {s.p_at_5:.3f} | {s.mrr:.3f} | {s.ndcg_at_5:.3f} "
                        f"| {s.copy_rate:.3f} | {s.coverage:.3f} |"
                    )
                    for language, part in by_language(articles, labelled, lists).items():
                        print(json.dumps({"set": path.name, "language": language, "policy": changed, **part}))
                        rows.append(
                            f"| {path.stem} [{language}] | {knobs} | {part['p_at_5']:.3f} | {part['mrr']:.3f} | "
                            f"{part['ndcg_at_5']:.3f} | cross-language links {part['cross_language']:.3f} | |"
                        )
    print(f"\nmodel {args.model} ({args.backend})\n")
    print("| set | policy (changes from the defaults) | P@5 | MRR | nDCG@5 | copy rate | coverage |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
