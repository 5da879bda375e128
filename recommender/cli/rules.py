"""``pin``, ``block``, ``rule exclude|list|delete``: editors' standing rules over every "Also Read" list.

Each command stores or removes a rule in the index's catalog (durable when it returns); a running server applies
it within half a second, the CLI's ``similar`` and the next ``export`` at once. See
:mod:`recommender.controls.rules`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recommender.cli.common import IndexOpt, JsonOpt, app, err, handle_errors, load_settings

if TYPE_CHECKING:
    from recommender.controls.rules import Rule

rule_app = typer.Typer(
    help="Editors' rules: exclude sections or tags, list and delete rules (see also `pin` and `block`).",
    no_args_is_help=True,
)
app.add_typer(rule_app, name="rule")

UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="The rule stops applying then: a date (that whole day, UTC), a date-time, or a duration (48h, 7d).",
        show_default=False,
    ),
]
NoteOpt = Annotated[str | None, typer.Option("--note", help="Why (shown in `rule list`).", show_default=False)]


def _store(rule_values: dict[str, object], index: Path | None, as_json: bool) -> None:
    from recommender.controls.rules import Rule, add_rule

    settings = load_settings(index=index)
    now = datetime.now(UTC)
    rule = add_rule(settings.index_dir, Rule.from_request(rule_values, now), lock_timeout=settings.lock_timeout)
    _print([rule], as_json, now, single=True)


def _print(rules: list[Rule], as_json: bool, now: datetime, single: bool = False) -> None:
    if as_json:
        data = [rule.to_dict(now) for rule in rules]
        typer.echo(json.dumps(data[0] if single else data, ensure_ascii=False, indent=2))
        return
    for rule in rules:
        state = "" if rule.active(now) else "  (expired)"
        note = f"  -- {rule.note}" if rule.note else ""
        typer.echo(f"rule {rule.id}: {rule.describe()}{state}{note}")


@app.command()
@handle_errors
def pin(
    story: Annotated[str, typer.Argument(metavar="STORY", help="The story whose list gets the pin.")],
    target: Annotated[str, typer.Argument(metavar="TARGET", help="The story to show in it.")],
    position: Annotated[int, typer.Option("--position", "-p", min=1, help="Place in the list, from 1.")] = 1,
    until: UntilOpt = None,
    note: NoteOpt = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pin TARGET into STORY's "Also Read" list at a position (a background explainer, a live page)."""
    _store(
        {"kind": "pin", "story": story, "target": target, "position": position, "until": until, "note": note},
        index,
        as_json,
    )


@app.command()
@handle_errors
def block(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="The story never to show.")],
    under: Annotated[
        str | None, typer.Option("--under", help="Only in this story's list [default: every list]", show_default=False)
    ] = None,
    until: UntilOpt = None,
    note: NoteOpt = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Never show TARGET (a correction, a legal hold), in every list or only under one story."""
    _store({"kind": "block", "target": target, "under": under, "until": until, "note": note}, index, as_json)


@rule_app.command("exclude")
@handle_errors
def exclude(
    section: Annotated[str | None, typer.Option("--section", help="Never show stories of this section.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Never show stories with this tag.")] = None,
    under: Annotated[str | None, typer.Option("--under", help="Only in this story's list.")] = None,
    under_section: Annotated[
        str | None, typer.Option("--under-section", help="Only under stories of this section.")
    ] = None,
    under_tag: Annotated[str | None, typer.Option("--under-tag", help="Only under stories with this tag.")] = None,
    until: UntilOpt = None,
    note: NoteOpt = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Never show a section or a tag (sponsored content), everywhere or under some stories; with only --under*,
    show nothing at all under those stories (obituaries)."""
    if not (section or tag or under or under_section or under_tag):
        err("Error: give --section or --tag (what never to show), and/or --under, --under-section or --under-tag")
        raise typer.Exit(2)
    _store(
        {
            "kind": "exclude",
            "section": section,
            "tag": tag,
            "under": under,
            "under_section": under_section,
            "under_tag": under_tag,
            "until": until,
            "note": note,
        },
        index,
        as_json,
    )


@rule_app.command("list")
@handle_errors
def list_(
    include_expired: Annotated[bool, typer.Option("--all", help="Also list expired rules.")] = False,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The index's rules in force (with --all, expired ones too)."""
    from recommender.controls.rules import list_rules

    settings = load_settings(index=index)
    now = datetime.now(UTC)
    rules = [rule for rule in list_rules(settings.index_dir) if include_expired or rule.active(now)]
    if not rules and not as_json:
        typer.echo("no rules")
        return
    _print(rules, as_json, now)


@rule_app.command("delete")
@handle_errors
def delete(
    ids: Annotated[list[int] | None, typer.Argument(metavar="ID...", help="Rule ids (from `rule list`).")] = None,
    expired: Annotated[bool, typer.Option("--expired", help="Also delete every expired rule.")] = False,
    index: IndexOpt = None,
) -> None:
    """Delete rules by id (their effect ends at once)."""
    from recommender.controls.rules import delete_rules

    if not ids and not expired:
        err("Error: give rule ids, or --expired")
        raise typer.Exit(2)
    settings = load_settings(index=index)
    gone = delete_rules(settings.index_dir, ids or [], expired=expired, lock_timeout=settings.lock_timeout)
    typer.echo(f"{len(gone)} rule(s) deleted" + (f": {', '.join(map(str, gone))}" if gone else ""))
