"""An article's language: what its source says, else a cheap guess from its text.

Sources that say the language (``<html lang>``, ``og:locale``, a feed's ``<language>``, Atom ``xml:lang``, a
``language`` column) are taken at their word, normalised to the primary subtag (``en-US`` -> ``en``); the
detector never runs for them. Otherwise :func:`detect_language` asks py3langid (langid.py's maintained fork, whose
model ships inside the package: nothing is downloaded) about the first :data:`DETECT_CHARS` characters, which
keeps it near 2,000 articles a second on one core (docs/benchmarks.md); a guess below :data:`MIN_CONFIDENCE`
is no answer, so a headline of three words does not get a wrong language.
"""

from __future__ import annotations

import threading
from typing import Any

from recommender.articles import normalise_language

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


def language_of(declared: str | None, text: str) -> tuple[str | None, bool]:
    """``(language, detected)``: the declared language normalised when there is one (no detection), else the
    detector's answer."""
    language = normalise_language(declared)
    if language is not None:
        return language, False
    return detect_language(text), True
