"""A/B tests: which ranking variant a reader sees, by a stable hash of an anonymous value the page passes.

The value is first-party and anonymous -- a random id the site keeps for its own readers, or one the widget draws
per page view -- and is never stored: only the variant it maps to travels with the events. The same value and the
same variant names always give the same variant, on every server process and every day, so a reader does not
flip between variants and the numbers per variant compare like with like.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

#: The variant of an index that names no others: its one ranking policy.
DEFAULT_VARIANT = "default"


def assign_variant(reader: str, variants: Iterable[str], experiment: str = "") -> str:
    """The variant for ``reader``: sha256 of ``experiment`` and ``reader`` picks one of the names (sorted, so
    the order they are listed in does not matter), evenly. A new ``experiment`` name reshuffles everyone."""
    names = sorted(set(variants))
    if not names:
        raise ValueError("no variants to choose from")
    digest = hashlib.sha256(f"{experiment}\x00{reader}".encode()).digest()
    return names[int.from_bytes(digest[:8], "big") % len(names)]
