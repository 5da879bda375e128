"""Every command through typer's CliRunner, including each bad-input case (fake embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender.cli.app import app
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder

runner = CliRunner()


def run(*args: str | Path) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture
def built(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> Path:
    index_dir = tmp_path / "index"
    result = run("build", articles_file, "--index", index_dir, "--model", FAKE_MODEL)
    assert result.exit_code == 0, result.output
    return index_dir


def test_build_prints_a_one_line_summary(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> None:
    result = run("build", articles_file, "--index", tmp_path / "i", "--model", FAKE_MODEL)
    assert result.exit_code == 0
    assert result.stdout.strip().splitlines()[-1].startswith(f"{len(ARTICLES)} added, 0 updated, 0 skipped, 0 rejected")
    again = run("build", articles_file, "--index", tmp_path / "i", "--json")
    assert json.loads(again.stdout) | {"seconds": 0} == {
        "added": 0,
        "updated": 0,
        "skipped": len(ARTICLES),
        "deleted": 0,
        "embedded": 0,
        "rejected": [],
        "not_found": [],
        "seconds": 0,
        "incomplete": None,
    }


def _bad_inputs(tmp: Path) -> list[tuple[str, Path, str]]:
    def f(name: str, data: bytes) -> Path:
        p = tmp / name
        p.write_bytes(data)
        return p

    return [
        ("malformed JSONL line", f("m.jsonl", b'{"id": "m1", "title": "ok"}\n{"id": \n'), "m.jsonl:2: malformed JSON"),
        ("CSV row without id", f("c.csv", b"id,title\ncsv1,ok\n,no id here\n"), "c.csv:3: missing 'id'"),
        (
            "neither title nor body",
            f("e.jsonl", b'{"id": "e1", "title": "ok"}\n{"id": "e2", "title": ""}\n'),
            "e.jsonl:2 (id 'e2'): has neither title nor body",
        ),
        (
            "bad date",
            f("d.jsonl", b'{"id": "d1", "title": "ok"}\n{"id": "d2", "title": "t", "published_at": "31/02/2024"}\n'),
            "d.jsonl:2 (id 'd2'): published_at '31/02/2024' is not an ISO 8601 date",
        ),
        (
            "duplicate ids",
            f("u.jsonl", b'{"id": "u1", "title": "ok"}\n{"id": "u1", "title": "again"}\n'),
            "u.jsonl:2: duplicate id 'u1'",
        ),
        ("not UTF-8", f("n.csv", b"id,title\nn1,ok\nn2,caf\xe9\n"), "n.csv:3: not valid UTF-8"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_each_bad_input_is_one_line_and_the_rest_is_kept(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path, case: int
) -> None:
    name, source, message = _bad_inputs(tmp_path)[case]
    index_dir = tmp_path / "index"
    result = run("build", articles_file, source, "--index", index_dir, "--model", FAKE_MODEL)
    assert result.exit_code == 3, name
    lines = [line for line in result.stderr.splitlines() if line.startswith("rejected: ")]
    assert len(lines) == 1 and message in lines[0], (name, result.stderr)
    assert "1 rejected" in result.stdout
    info = json.loads(run("info", "--index", index_dir, "--json").stdout)
    expected = len(ARTICLES) + (0 if name == "not UTF-8" else 1)  # the valid neighbour line is kept
    assert info["articles"] == expected, name


def test_strict_refuses_the_batch(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> None:
    name, source, message = _bad_inputs(tmp_path)[0]
    index_dir = tmp_path / "index"
    result = run("build", articles_file, source, "--index", index_dir, "--model", FAKE_MODEL, "--strict")
    assert result.exit_code == 1
    assert message in result.stderr and "batch refused" in result.stderr
    assert fake.calls == []


def test_missing_source_refuses_the_command(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> None:
    result = run(
        "build", articles_file, tmp_path / "missing.jsonl", "--index", tmp_path / "index", "--model", FAKE_MODEL
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'missing.jsonl'}: no such file or folder"
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_add_and_delete(built: Path, tmp_path: Path) -> None:
    new = write_jsonl(
        tmp_path / "new.jsonl", [{"id": "a9", "title": "Flood river city residents", "body": "evacuated rain homes"}]
    )
    result = run("add", new, "--index", built)
    assert result.exit_code == 0 and result.stdout.startswith("1 added")
    similar = json.loads(run("similar", "a1", "--index", built, "--json", "-k", "3").stdout)
    assert "a9" in [s["id"] for s in similar]
    result = run("delete", "a9", "ghost", "--index", built)
    assert result.exit_code == 3 and "not found: 'ghost'" in result.stderr and "1 deleted" in result.stdout
    similar = json.loads(run("similar", "a1", "--index", built, "--json", "-k", "3").stdout)
    assert "a9" not in [s["id"] for s in similar]


def test_add_without_index(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> None:
    result = run("add", articles_file, "--index", tmp_path / "none")
    assert result.exit_code == 1 and "no index in" in result.stderr


def test_similar_json_shape(built: Path) -> None:
    result = run("similar", "a1", "--index", built, "--json", "-k", "2")
    assert result.exit_code == 0
    items = json.loads(result.stdout)
    assert len(items) == 2
    for item in items:
        assert {"id", "title", "url", "score", "published_at", "section"} <= set(item)
        assert item["id"] not in ("a1", "a1-wire")


def test_similar_table(built: Path) -> None:
    result = run("similar", "a1", "--index", built, "-k", "2")
    assert result.exit_code == 0
    assert (
        "Also read for a1" in result.stdout
        and "a2" in result.stdout
        and "relevance" in result.stdout
        and "cosine" in result.stdout
    )


def test_similar_by_url_and_filters(built: Path) -> None:
    items = json.loads(
        run("similar", "https://news.example/a1", "--index", built, "--json", "--section", "local").stdout
    )
    assert {i["id"] for i in items} == {"a2", "a3"}
    items = json.loads(
        run("similar", "a1", "--index", built, "--json", "--exclude", "a2", "--since", "2024-03-03").stdout
    )
    assert [i["id"] for i in items] == ["a3"]


def test_similar_unknown_id(built: Path) -> None:
    result = run("similar", "nope", "--index", built)
    assert result.exit_code == 1 and result.stderr.strip() == "Error: article not found: 'nope'"


def test_query_free_text(built: Path) -> None:
    result = run("query", "central bank interest rates", "--index", built, "--json", "-k", "2")
    assert result.exit_code == 0
    assert {i["id"] for i in json.loads(result.stdout)} == {"b1", "b2"}
    assert run("query", "  ", "--index", built).exit_code == 1


def test_info(built: Path) -> None:
    info = json.loads(run("info", "--index", built, "--json").stdout)
    assert {"model", "dimension", "articles", "index_type", "built_at"} <= set(info)
    assert info["model"] == FAKE_MODEL and info["articles"] == len(ARTICLES) and info["index_type"] == "flat"
    text = run("info", "--index", built).stdout
    assert "index_type" in text and "flat" in text


def test_no_index_is_a_clear_error(tmp_path: Path) -> None:
    result = run("info", "--index", tmp_path / "empty")
    assert result.exit_code == 1 and "no index in" in result.stderr


def test_settings_precedence_flag_env_config(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recommender.toml").write_text(f'index = "{built}"\nk = 1\n', encoding="utf-8")
    assert len(json.loads(run("similar", "a1", "--json").stdout)) == 1  # config file
    monkeypatch.setenv("RECOMMENDER_INDEX", str(tmp_path / "elsewhere"))
    assert "no index in" in run("similar", "a1").stderr  # env beats config
    assert run("similar", "a1", "--index", built, "--json").exit_code == 0  # flag beats env
    (tmp_path / "recommender.toml").write_text('colour = "red"\n', encoding="utf-8")
    monkeypatch.delenv("RECOMMENDER_INDEX")
    result = run("info")
    assert result.exit_code == 2 and "unknown setting(s) colour" in result.stderr


def test_help_is_fast_and_lists_commands() -> None:
    result = run("--help")
    for command in ("build", "add", "delete", "similar", "query", "info"):
        assert command in result.stdout


def test_policy_show_set_apply_and_refresh(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = json.loads(run("policy", "show", "--index", built, "--json").stdout)
    assert shown["time_half_life_days"] == 3.0 and shown["language"] == "same"
    changed = run("policy", "set", "keyword_weight=0.4", "diversity=0.1", "--index", built)
    assert changed.exit_code == 0 and "every list recomputed" in changed.stdout
    info = json.loads(run("info", "--index", built, "--json").stdout)
    assert info["ranking"]["keyword_weight"] == 0.4 and info["ranking"]["diversity"] == 0.1
    bad = run("policy", "set", "keyword_weight=five", "--index", built)
    assert bad.exit_code == 2 and "ranking.keyword_weight = 'five': must be a number from 0 to 1" in bad.stderr
    unknown = run("policy", "set", "colour=red", "--index", built)
    assert unknown.exit_code == 2 and "unknown ranking setting(s) colour" in unknown.stderr
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recommender.toml").write_text(f'index = "{built}"\n[ranking]\nkeyword_weight = 0.5\n', "utf-8")
    assert "note: the config file's [ranking] differs" in run("similar", "a1").stderr  # a read never rewrites
    assert "policy changed" in run("policy", "apply").stdout
    assert json.loads(run("info", "--json").stdout)["ranking"]["keyword_weight"] == 0.5
    assert run("policy", "apply").stdout.strip() == "policy unchanged"
    assert run("refresh").stdout.strip().endswith("lists recomputed")


@pytest.mark.parametrize(
    "config, message",
    [
        ("index = 5\n", "index = 5: must be a string"),
        ('k = "five"\n', "k = 'five': must be a whole number from 1 to 50"),
        ("k = 0\n", "k = 0: must be a whole number from 1 to 50"),
        ('lock_timeout = "x"\n', "lock_timeout = 'x': must be a number from 0 to 3600"),
        ("[ranking]\ntime_weight = 3\n", "ranking.time_weight = 3: must be a number from 0 to 1"),
    ],
)
def test_bad_config_values_are_one_line_and_exit_2(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recommender.toml").write_text(config, "utf-8")
    result = run("similar", "a1", "--index", built)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
