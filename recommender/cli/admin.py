"""``info``, ``check``, ``reindex``, ``policy``: what an index is, whether it is sound (and its FAISS file
rebuilt when it is not), and how it ranks."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from recommender.cli.common import (
    EXIT_ERROR,
    IndexOpt,
    JsonOpt,
    MaxMemoryOpt,
    app,
    err,
    handle_errors,
    load_settings,
    memory_budget,
)

policy_app = typer.Typer(
    help="Show or change the index's ranking policy (every stored list is recomputed on a change).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")


@app.command()
@handle_errors
def info(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Model, dimension, article count, index type, build time and ranking policy of an index."""
    from recommender.recommender import Recommender

    settings = load_settings(index=index)
    with Recommender.open(settings.index_dir) as rec:
        facts = rec.info()
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={'-' if v is None else v}" for k, v in value.items())
        typer.echo(f"{key.ljust(width)}  {'-' if value is None else value}")


@app.command()
@handle_errors
def check(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Check an index's integrity (checksums, counts, vectors, lists). Exit 1 when something is wrong."""
    from recommender.integrity import check_index

    settings = load_settings(index=index)
    report = check_index(settings.index_dir)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            err(f"problem: {problem}")
        for note in report.notes:
            typer.echo(f"note: {note}")
        status = "ok" if report.ok else "DAMAGED"
        typer.echo(f"{status}: {report.articles} articles, {report.index_entries} index entries")
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


def _print_policy(policy: dict[str, object], as_json: bool) -> None:
    from recommender.ranking.policy import KNOBS

    if as_json:
        typer.echo(json.dumps(policy, indent=2))
        return
    width = max(len(k) for k in policy)
    for key, value in policy.items():
        shown = "none" if value is None else value
        typer.echo(f"{key.ljust(width)}  {str(shown).ljust(6)}  {KNOBS[key].help}")


@policy_app.command("show")
@handle_errors
def policy_show(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """The ranking policy the index's lists were computed with."""
    from recommender.recommender import Recommender

    settings = load_settings(index=index)
    with Recommender.open(settings.index_dir) as rec:
        _print_policy(rec.policy.to_dict(), as_json)


@policy_app.command("set")
@handle_errors
def policy_set(
    assignments: Annotated[
        list[str], typer.Argument(metavar="KEY=VALUE...", help="e.g. keyword_weight=0.3 time_half_life_days=3")
    ],
    index: IndexOpt = None,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            help="Set the policy of an A/B variant of this name (lists of its own; starts from the site's policy) "
            "instead of the site's own.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change knobs of the ranking policy and recompute every stored list (atomically: readers see the old lists
    until the new ones are all written). A recommender.toml with a [ranking] table takes precedence at the next
    write; change it there instead."""
    from recommender.ranking.policy import RankingPolicy
    from recommender.recommender import Recommender
    from recommender.writer import apply_policy

    settings = load_settings(index=index)
    _check_variant_name(variant)
    with Recommender.open(settings.index_dir) as rec:
        current = rec.variants.get(variant, rec.policy) if variant else rec.policy
    wanted = RankingPolicy.from_assignments(assignments, current)
    changed = apply_policy(settings.index_dir, wanted, variant=variant or "", lock_timeout=settings.lock_timeout)
    if not as_json:
        what = f"variant {variant!r}" if variant else "policy"
        typer.echo(f"{what} changed; every list recomputed" if changed else f"{what} unchanged")
    _print_policy(wanted.to_dict(), as_json)


def _check_variant_name(name: str | None) -> None:
    """``default`` names the site's own policy in the API and the report; a variant needs another name."""
    if name is not None and (not name.strip() or name == "default" or len(name) > 64):
        err("Error: a variant's name is 1 to 64 characters and not 'default' (the site's own policy)")
        raise typer.Exit(2)


@policy_app.command("remove-variant")
@handle_errors
def policy_remove_variant(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The A/B variant to end.")],
    index: IndexOpt = None,
) -> None:
    """End an A/B variant: its lists are dropped; readers it had are served the site's policy."""
    from recommender.writer import apply_policy

    settings = load_settings(index=index)
    _check_variant_name(name)
    changed = apply_policy(settings.index_dir, None, variant=name, lock_timeout=settings.lock_timeout)
    typer.echo(f"variant {name!r} removed" if changed else f"no variant {name!r}")


@policy_app.command("apply")
@handle_errors
def policy_apply(index: IndexOpt = None) -> None:
    """Make the index follow the config file's [ranking] table now (any write does it too)."""
    from recommender.writer import apply_policy

    settings = load_settings(index=index)
    if settings.ranking is None:
        err("Error: the config file has no [ranking] table")
        raise typer.Exit(2)
    changed = apply_policy(settings.index_dir, settings.ranking, lock_timeout=settings.lock_timeout)
    typer.echo("policy changed; every list recomputed" if changed else "policy unchanged")


@app.command()
@handle_errors
def reindex(index: IndexOpt = None, max_memory: MaxMemoryOpt = None) -> None:
    """Rebuild the FAISS file and manifest from the catalog's vectors (after a damaged or lost index file, or a
    hand-edited manifest). Nothing is embedded; a damaged catalog cannot be rebuilt this way."""
    from recommender.writer import reindex as rebuild

    settings = load_settings(index=index, max_memory=max_memory)
    manifest = rebuild(settings.index_dir, lock_timeout=settings.lock_timeout, max_memory_bytes=memory_budget(settings))
    typer.echo(
        f"rebuilt {manifest.index_file} from the catalog: {manifest.articles} articles, "
        f"{manifest.index_entries} index entries, {manifest.index_type}"
    )


@app.command()
@handle_errors
def refresh(index: IndexOpt = None) -> None:
    """Recompute every stored list and re-take the keyword counts (a large build does it by itself; writes
    patch lists and keep keyword weights still in between)."""
    from recommender.writer import refresh_lists

    settings = load_settings(index=index)
    count = refresh_lists(settings.index_dir, lock_timeout=settings.lock_timeout)
    typer.echo(f"{count} lists recomputed")
