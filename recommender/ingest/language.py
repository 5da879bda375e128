"""An article's language: what its source says, else a cheap guess from its text.

Sources that say the language (``<html lang>``, ``og:locale``, a feed's ``<language>``, Atom ``xml:lang``, a
``language`` column) are taken at their word, normalised to the primary subtag (``en-US`` -> ``en``); the
detector never runs for them. Otherwise :func:`detect_language` asks py3langid (langid.py's maintained fork, whose
model ships inside the package: nothing is downloaded) about the first :data:`DETECT_CHARS` characters, which
keeps it near 2,000 articles a second on one core (docs/benchmarks.md); a guess below :data:`MIN_CONFIDENCE`
is no answer, so a headline of three words does not get a wrong language. :func:`detect_languages` gives the same
answers for many texts at once, several times faster (:mod:`recommender.ingest.langid_batch`): a build uses it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from recommender.articles import normalise_language

if TYPE_CHECKING:
    from recommender.ingest.langid_batch import BatchClassifier

#: Characters of title + body the detector reads: the lead says the language; more only costs time.
DETECT_CHARS = 600
#: Below this probability the detector's answer is dropped (None) rather than stored.
MIN_CONFIDENCE = 0.5

_lock = threading.Lock()
_loaded: list[Any] = []


def _identifier() -> Any:
    """The model, loaded once per process (about a second: it is unpacked from the wheel)."""
    if not _loaded:
        with _lock:
            if not _loaded:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _loaded.append(LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True))
    return _loaded[0]


def warm_up_in_background() -> None:
    """Load the model on a daemon thread, so a long-running process (the server) does not make its first
    write wait for it."""
    threading.Thread(target=_identifier, name="language-model", daemon=True).start()


def detect_language(text: str) -> str | None:
    """The language of ``text`` as a lowercase ISO 639-1 code (``en``, ``de``, ``fr``), or None when the text
    is too short or too mixed to say."""
    sample = text[:DETECT_CHARS].strip()
    if len(sample) < 12:
        return None
    code, confidence = _identifier().classify(sample)
    return normalise_language(code) if confidence >= MIN_CONFIDENCE else None


def batch_classifier() -> BatchClassifier | None:
    """The model in the shapes :func:`detect_languages` needs (float32 table, about 57 MB: made once per build,
    not kept by the process), or None when this py3langid version lacks what it reads."""
    from recommender.ingest.langid_batch import BatchClassifier, supports_batch

    identifier = _identifier()
    return BatchClassifier(identifier) if supports_batch(identifier) else None


def detect_languages(texts: Sequence[str], classifier: BatchClassifier | None = None) -> list[str | None]:
    """:func:`detect_language` of each text, in order: the same answers, the model's arithmetic done for the
    whole batch at once with ``classifier`` (:func:`batch_classifier`; one text at a time without one)."""
    samples = [text[:DETECT_CHARS].strip() for text in texts]
    asked = [i for i, sample in enumerate(samples) if len(sample) >= 12]
    answers: list[str | None] = [None] * len(texts)
    if classifier is None:
        for i in asked:
            answers[i] = detect_language(samples[i])
        return answers
    for i, (code, confidence) in zip(asked, classifier.classify_many([samples[i] for i in asked]), strict=True):
        answers[i] = normalise_language(code) if confidence >= MIN_CONFIDENCE else None
    return answers


def language_of(declared: str | None, text: str) -> tuple[str | None, bool]:
    """``(language, detected)``: the declared language normalised when there is one (no detection), else the
    detector's answer."""
    language = normalise_language(declared)
    if language is not None:
        return language, False
    return detect_language(text), True
