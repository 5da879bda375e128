"""A/B tests: which ranking variant a reader sees, by a stable hash of an anonymous value the page passes.

The value is first-party and anonymous -- a random id the site keeps for its own readers, or one the widget draws
per page view -- and is never stored: only the variant it maps to travels with the events. The same value and the
same variant names always give the same variant, on every server process and every day, so a reader does not
flip between variants and the numbers per variant compare like with like.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

#: What the API, the widget, the events and the report call the index's own policy (the lists' unnamed
#: variant, :data:`recommender.ranking.lists.DEFAULT_VARIANT`).
DEFAULT_VARIANT = "default"


@lru_cache(maxsize=256)  # asked on every read
def lists_variant(name: str | None) -> str:
    """The lists' key of a variant as the API names it: ``default`` (or none) is the index's own policy."""
    from recommender.ranking.lists import DEFAULT_VARIANT as OWN

    return OWN if name in (None, DEFAULT_VARIANT) else name


def assign_variant(reader: str, variants: Iterable[str], experiment: str = "") -> str:
    """The variant for ``reader``: sha256 of ``experiment`` and ``reader`` picks one of the names (sorted, so
    the order they are listed in does not matter), evenly. A new ``experiment`` name reshuffles everyone."""
    names = sorted(set(variants))
    if not names:
        raise ValueError("no variants to choose from")
    digest = hashlib.sha256(f"{experiment}\x00{reader}".encode()).digest()
    return names[int.from_bytes(digest[:8], "big") % len(names)]
