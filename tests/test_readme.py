"""The README cannot drift from the code: its commands are the CLI's, its Python example runs and prints what
it says, its policy table lists every knob (the sqlite-utils way: documentation checked by the test suite)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender.cli.app import app
from recommender.ranking.policy import KNOBS, RankingPolicy

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)


def recommender_commands() -> list[str]:
    """Every ``$ recommender ...`` line of the README's console blocks (without pipes, comments, ``&``)."""
    out = []
    for kind, body in BLOCKS:
        if kind != "console":
            continue
        for line in body.splitlines():
            if not line.startswith("$ "):
                continue
            command = re.sub(r"\s+#\s.*$", "", line[2:]).split(" | ")[0].strip().rstrip("&").strip()
            found = re.match(r"(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/)?recommender\s+(.*)$", command)
            if found:
                out.append(found.group(1))
    return out


def test_the_first_block_is_the_two_set_up_commands() -> None:
    kind, body = BLOCKS[0]
    assert [line for line in body.splitlines() if line.strip()] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text("utf-8")


def test_there_are_commands_to_check() -> None:
    commands = recommender_commands()
    assert len(commands) > 30
    for name in ("build", "similar", "query", "serve", "export", "policy set", "eval", "pin", "report", "watch"):
        assert any(c.startswith(name) for c in commands), name


@pytest.mark.parametrize("command", recommender_commands())
def test_every_command_in_the_readme_is_one_the_cli_takes(command: str) -> None:
    """Each command and every option it uses exist (``--help`` after them: click refuses an unknown one)."""
    result = CliRunner().invoke(app, [*shlex.split(command), "--help"])
    assert result.exit_code == 0, f"recommender {command}\n{result.output}"


def test_every_policy_knob_is_in_the_readme_table_with_its_default() -> None:
    defaults = RankingPolicy().to_dict()
    for knob in KNOBS:
        row = re.search(rf"^\| `{knob}` \| ([^|]+) \|", README, flags=re.M)
        assert row, f"{knob} is not in the README's policy table"
        shown = row.group(1).strip()
        value = defaults[knob]
        expected = "none" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
        assert shown == expected, (knob, shown, expected)


@pytest.mark.integration
def test_the_python_example_runs_and_prints_what_the_readme_says(tmp_path: Path) -> None:
    code = next(body for kind, body in BLOCKS if kind == "python")
    printed = next(body for kind, body in BLOCKS if kind == "text" and "embedded in" in body)
    shutil.copytree(ROOT / "data", tmp_path / "data")
    (tmp_path / "example.py").write_text(code, "utf-8")
    result = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr

    def timeless(text: str) -> str:
        return re.sub(r"in \d+\.\ds", "in Ns", text).strip()

    assert timeless(result.stdout) == timeless(printed)


def console_block(first_command: str) -> list[tuple[str, str]]:
    """The README console block starting with ``$ recommender FIRST_COMMAND``: (command, printed output) pairs."""
    for kind, body in BLOCKS:
        if kind == "console" and body.startswith(f"$ recommender {first_command}\n"):
            pairs: list[tuple[str, str]] = []
            for chunk in re.split(r"^\$ recommender ", body, flags=re.M)[1:]:
                command, _, printed = chunk.partition("\n")
                pairs.append((command, printed))
            return pairs
    raise AssertionError(f"no console block starts with 'recommender {first_command}'")


def normalised(text: str) -> str:
    """Output with what changes from run to run (timings, clock times, index versions) masked."""
    text = re.sub(r"in \d+\.\ds", "in N.Ns", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", "TIME", text)
    text = re.sub(r"(index_version\s+)\S+", r"\1V", text)
    text = re.sub(r"(index_bytes\s+)\d+", r"\1N", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


@pytest.mark.integration
def test_the_sample_corpus_examples_print_what_the_readme_says(tmp_path: Path) -> None:
    """The README's console blocks over the bundled sample are run as printed, with the real packaged model, and
    their output compared (timings and clock times masked): a ranking change that moves the README's lists fails
    here until the README shows the new ones."""
    shutil.copytree(ROOT / "data", tmp_path / "data")
    executable = Path(sys.executable).with_name("recommender")
    env = {"PATH": str(executable.parent), "HOME": str(tmp_path), "COLUMNS": "80", "HF_HUB_OFFLINE": "1"}
    env["RECOMMENDER_CACHE"] = str(tmp_path / "cache")
    for first in (
        "build data/ecbplus-sample.jsonl",
        "similar ecb-5_1ecb -k 3",
        "similar ecb-5_1ecb -k 3 --explain",
        "info",
        "eval data/ecbplus-sample.jsonl",
    ):
        for command, printed in console_block(first):
            result = subprocess.run(
                [str(executable), *shlex.split(command)],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert result.returncode == 0, f"recommender {command}\n{result.stderr}"
            assert normalised(result.stdout) == normalised(printed), f"recommender {command}"
