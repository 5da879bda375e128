"""News sense with the real packaged model and the default policy: meaning before shared names, time, language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender import Recommender, build_index

pytestmark = pytest.mark.integration

STORY = (
    "story",
    "France and Germany sign a new defence cooperation treaty",
    "The French and German governments signed a treaty in Paris on Tuesday to deepen military cooperation and "
    "coordinate foreign policy, officials from both countries said.",
)
SAME_SUBJECT = [
    (
        "d1",
        "Japan and South Korea agree on security pact after summit",
        "Leaders of Japan and South Korea agreed to share military intelligence and hold regular talks, ending "
        "years of diplomatic tension.",
    ),
    (
        "d2",
        "Spain and Italy foreign ministers reach migration agreement",
        "The foreign ministers of Spain and Italy agreed on a joint approach to migration across the Mediterranean "
        "at talks in Rome.",
    ),
    (
        "d3",
        "US and Canada leaders hold talks on border and trade deal",
        "The American president and the Canadian prime minister met in Ottawa to negotiate a new border security "
        "and trade agreement.",
    ),
    (
        "d4",
        "Brazil and Argentina launch joint diplomatic initiative",
        "Brazil and Argentina announced a diplomatic initiative to mediate regional conflicts, their presidents "
        "said in a joint statement.",
    ),
    (
        "d5",
        "Poland and Lithuania strengthen military alliance",
        "Poland and Lithuania signed an agreement on joint defence exercises and closer coordination within NATO.",
    ),
]
PLACE_ONLY = [
    (
        "p1",
        "Earthquake kills dozens in southern France",
        "A powerful earthquake struck southern France overnight, killing dozens of people and destroying homes, "
        "rescue services said.",
    ),
    (
        "p2",
        "Floods devastate towns along the Rhine in Germany",
        "Heavy rain caused the Rhine to burst its banks in western Germany, flooding towns and forcing thousands "
        "from their homes.",
    ),
]
OTHER = [
    ("u1", "Real Madrid win the cup final after extra time", "Real Madrid beat their rivals 2-1 after extra time."),
]


def test_a_shared_place_name_does_not_lift_a_story_on_another_subject(tmp_path: Path) -> None:
    """A 10-article archive: the story and nine headlines. Stories that share only a country's name with it rank
    below every story on the same subject (or are not shown); a brand-new archive's keyword weights are sane."""
    rows = [STORY, *SAME_SUBJECT, *PLACE_ONLY, *OTHER]
    source = tmp_path / "a.jsonl"
    source.write_text("".join(json.dumps({"id": i, "title": t, "body": b}) + "\n" for i, t, b in rows), "utf-8")
    build_index([source], tmp_path / "index")
    with Recommender.open(tmp_path / "index") as rec:
        ids = rec.related("story", 9).ids
    shown_same = [i for i in ids if i.startswith("d")]
    assert len(shown_same) >= 4, ids
    for place in (i for i in ids if i.startswith("p")):
        assert ids.index(place) > max(ids.index(d) for d in shown_same), ids


def test_the_lists_of_a_bilingual_archive_keep_to_each_language(tmp_path: Path) -> None:
    english = [(f"en{n}", t, b) for n, (_, t, b) in enumerate([STORY, *SAME_SUBJECT, *PLACE_ONLY])]
    french = [
        ("fr0", "La France et l'Allemagne signent un traité de défense", "Les gouvernements ont signé un traité."),
        ("fr1", "Accord de sécurité entre le Japon et la Corée du Sud", "Les dirigeants ont conclu un accord."),
        ("fr2", "Un séisme fait des dizaines de morts dans le sud de la France", "Les secours sont sur place."),
        ("fr3", "Inondations le long du Rhin en Allemagne", "Des milliers de personnes ont quitté leur maison."),
    ]
    source = tmp_path / "a.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "title": t, "body": b}) + "\n" for i, t, b in english + french), "utf-8"
    )
    build_index([source], tmp_path / "index")
    with Recommender.open(tmp_path / "index") as rec:
        assert rec.get("fr0").language == "fr" and rec.get("en0").language == "en"  # detected at ingest
        for article_id, *_ in english + french:
            mine = article_id[:2]
            assert all(other.startswith(mine) for other in rec.related(article_id, 5).ids), article_id
