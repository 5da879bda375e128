"""The benchmark keeps working: ``scripts/bench.py --quick`` runs end to end (numbers are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_section(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for heading in ("## 1. embedding throughput", "## 3. index", "## 3b. the vector index alone", "## 4. HTTP"):
        assert heading in out
    index_rows = [line for line in out.splitlines() if line.startswith("| 100 |")]
    assert len(index_rows) == 1 and "flat" in index_rows[0] and "nan" not in index_rows[0]
    assert "| 2,000 | flat | 1.000 |" in out  # the synthetic vector index, exact search
    assert "vectors = the real vector of the source article" in out  # says what the scaled archive is made of
    assert (tmp_path / "index-100" / "manifest.json").exists()
