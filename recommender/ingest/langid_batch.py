"""py3langid's ``classify`` over many texts at once, with the same answers to the last bit.

py3langid walks each text's bytes through its n-gram automaton one byte at a time in Python (about 0.3 ms for
600 characters) and then scores the features against a float16 table that numpy converts slowly (about 0.1 ms a
text). A build detects the language of every article without one, so here the automaton takes one step for a
whole batch of texts at a time (one numpy gather per byte position), the features of each text are counted in
the order py3langid counts them (first occurrence, so each dot product sums in the same order), and the table is
converted to float32 once per batch (exact: every float16 is a float32). The per-text steps after the dot
product are py3langid's own (``LanguageIdentifier._decide``). ``tests/test_ingest_heuristics.py`` ties the result to
``LanguageIdentifier.classify`` on real news text in several languages; constraints.txt pins the version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The widest automaton table py3langid writes (its modelio narrows rows to uint16 or uint32).
_ARRAY_DTYPES = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def supports_batch(identifier: Any) -> bool:
    """Whether ``identifier`` (a py3langid ``LanguageIdentifier``) has the internals :func:`classify_many` reads
    (another py3langid version may not: callers then classify one text at a time)."""
    names = ("tk_nextmove", "_rowbase", "tk_output", "nb_ptc", "nb_pc", "nb_classes", "_alias_pairs", "_encode")
    return (
        all(hasattr(identifier, name) for name in names)
        and getattr(identifier.tk_nextmove, "itemsize", None) in _ARRAY_DTYPES
        and getattr(identifier, "_norm_probs", False)
        and getattr(identifier, "min_confidence", None) is None
    )


class BatchClassifier:
    """The arrays of one identifier's model in the shapes a batch walk needs (float32 table: about 57 MB, so
    made for a build's batches, not kept by a server)."""

    def __init__(self, identifier: Any) -> None:
        self.identifier = identifier
        nextmove = identifier.tk_nextmove
        self.nextmove = np.frombuffer(nextmove, dtype=_ARRAY_DTYPES[nextmove.itemsize])
        self.rowbase = np.asarray(identifier._rowbase, dtype=np.intp)
        self.output = np.asarray(identifier.tk_output, dtype=np.int64)
        self.table = np.asarray(identifier.nb_ptc).astype(np.float32)
        self.priors = identifier.nb_pc
        self.features = self.table.shape[0]

    def classify_many(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """``identifier.classify(text)`` for each text, in order."""
        if not texts:
            return []
        ident = self.identifier
        encoded = [ident._encode(text) for text in texts]
        lengths = np.fromiter(map(len, encoded), dtype=np.intp, count=len(encoded))
        rows, columns = len(encoded), int(lengths.max())
        letters = np.zeros((columns, rows), dtype=np.intp)  # byte position x text: one row per automaton step
        for i, data in enumerate(encoded):
            letters[: len(data), i] = np.frombuffer(data, dtype=np.uint8)
        state = np.zeros(rows, dtype=np.intp)
        emitted = np.empty((columns, rows), dtype=np.int64)
        for position in range(columns):  # past a text's end its column walks on, and is masked below
            state = self.nextmove[self.rowbase[state] + letters[position]]
            emitted[position] = self.output[state]
        emitted = emitted.T
        valid = (np.arange(columns)[None, :] < lengths[:, None]) & (emitted >= 0)
        text_of = np.broadcast_to(np.arange(rows)[:, None], emitted.shape)[valid]
        keys = text_of * self.features + emitted[valid]  # text-major, then position: py3langid's visiting order
        unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")  # each text's features in first-occurrence order (its Counter's)
        unique, counts = unique[order], counts[order]
        owner = unique // self.features
        bounds = np.searchsorted(owner, np.arange(rows + 1))
        features = unique - owner * self.features
        answers = []
        for i in range(rows):
            start, end = int(bounds[i]), int(bounds[i + 1])
            if start < end:
                weights = np.log1p(counts[start:end].astype(np.float32))
                scores = weights @ self.table.take(features[start:end], axis=0) + self.priors
            else:  # no features: uniform under norm_probs, as py3langid's _raw_score
                scores = np.zeros(len(ident.nb_classes), dtype=np.float32)
            answers.append(self._decide(scores, int(lengths[i])))
        return answers

    def _decide(self, scores: np.ndarray, length: int) -> tuple[str, float]:
        """py3langid 0.4's ``_decide`` (norm_probs) and ``classify`` after the raw scores."""
        scores *= 1.0 / math.sqrt(length or 1)
        np.exp(scores - scores.max(), out=scores)
        scores /= scores.sum()
        for first, dupe in self.identifier._alias_pairs:
            scores[first] += scores[dupe]
            scores[dupe] = 0.0
        best = int(scores.argmax())
        return self.identifier.nb_classes[best], float(scores[best])
