#!/usr/bin/env python
# ruff: noqa: T201 - a script that prints its report
"""The int8 model at a shorter token window against torch fp32: speed in one run, then eval per labelled set.

    .venv/bin/python scripts/window_eval.py --window 192 data/ecbplus-sample.jsonl ../shared/data/*.jsonl

How ``onnx-int8-192`` (the default backend) was chosen: speed is texts/s on the 331 bundled ECB+ articles, torch
fp32 and the int8 file interleaved round by round (median of ``--rounds``); each set is then scored by
``recommender eval``'s pipeline with vectors from the int8 file read through the window, next to torch fp32
(``--no-torch`` skips torch's eval). Numbers recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender.embedding import DEFAULT_MODEL, load_embedder  # noqa: E402
from recommender.embedding.onnx import OnnxEmbedder  # noqa: E402
from recommender.evaluation.evaluate import evaluate_file  # noqa: E402

METRICS = ("p_at_5", "mrr", "ndcg_at_5", "coverage")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path, help="labelled JSONL files")
    parser.add_argument("--window", type=int, required=True, help="word pieces the int8 model reads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true", help="skip torch's eval (speed is still compared)")
    args = parser.parse_args(argv)

    torch_embedder = load_embedder(DEFAULT_MODEL, "torch")
    windowed = OnnxEmbedder(DEFAULT_MODEL, "onnx-int8")
    windowed._tokenizer.enable_truncation(max_length=args.window)  # noqa: SLF001 - the one knob under test
    rows = [json.loads(line) for line in (ROOT / "data" / "ecbplus-sample.jsonl").open(encoding="utf-8")]
    texts = [f"{r.get('title', '')}. {r.get('body', '')}" for r in rows]
    rates: dict[str, list[float]] = {"torch": [], f"int8-{args.window}": []}
    for _ in range(args.rounds):
        for name, embedder in zip(rates, (torch_embedder, windowed), strict=True):
            started = time.perf_counter()
            embedder.embed(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratio = medians[f"int8-{args.window}"] / medians["torch"]
    print("texts/s: " + ", ".join(f"{n} {v:.1f}" for n, v in medians.items()) + f"; int8/torch {ratio:.2f}x")
    for path in args.sets:
        for name, embedder in zip(rates, (torch_embedder, windowed), strict=True):
            if name == "torch" and args.no_torch:
                continue
            scores = evaluate_file(path, embedder=embedder).recommender.to_dict()
            print(path.name, name, " ".join(f"{m} {scores[m]:.4f}" for m in METRICS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
