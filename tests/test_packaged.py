"""Packaged models: a zip shipped in slices is joined, checked and unpacked once; a missing one says what to install.

Tiny fake slices in ``tmp_path`` stand in for the five all-mpnet-base-v2 packages (400 MB), so these run anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender.cli.app import app
from recommender.embedding import packaged
from recommender.embedding.onnx import ModelFolder, check_backend_supports
from recommender.embedding.packaged import MPNET, SplitModel, ensure_unpacked, part_files, resolve_model_path
from recommender.errors import ModelUnavailable

FILES = {
    "tiny-model/modules.json": json.dumps([{"idx": 0, "name": "0", "path": "", "type": "x.models.Transformer"}]),
    "tiny-model/config.json": json.dumps({"model_type": "bert", "hidden_size": 8}),
    "tiny-model/1_Pooling/config.json": json.dumps({"pooling_mode_mean_tokens": True}),
}


def fake_parts(folder: Path, pieces: int = 3) -> tuple[SplitModel, list[Path]]:
    """A zip of a tiny model folder, cut into ``pieces`` slices, and the SplitModel that describes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in FILES.items():
            archive.writestr(name, text)
    blob = buffer.getvalue()
    step = len(blob) // pieces + 1
    parts = []
    for n in range(pieces):
        part = folder / f"tiny-model.zip.{n + 1:03d}"
        part.write_bytes(blob[n * step : (n + 1) * step])
        parts.append(part)
    model = SplitModel(
        name="tiny-model",
        aliases=frozenset({"tiny-model"}),
        parts=tuple((f"tiny-model-part-{n + 1:03d}", p.name) for n, p in enumerate(parts)),
        sha256=hashlib.sha256(blob).hexdigest(),
        size=len(blob),
        install="pip install 'recommender[quality]'",
    )
    return model, parts


def test_slices_are_joined_checked_and_unpacked_once(tmp_path: Path) -> None:
    model, parts = fake_parts(tmp_path)
    root = tmp_path / "cache" / "models"
    folder = ensure_unpacked(model, parts, root)
    assert folder == root / f"tiny-model-{model.sha256[:12]}"
    for name, text in FILES.items():
        assert (folder / name.removeprefix("tiny-model/")).read_text() == text
    # nothing but the model folder (and the lock file) is left behind: no temporary zip or folder
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == [folder.name]
    for part in parts:  # a second call does not read the slices again
        part.unlink()
    assert ensure_unpacked(model, parts, root) == folder


def test_a_damaged_slice_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    model, parts = fake_parts(tmp_path)
    data = bytearray(parts[1].read_bytes())
    data[0] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    root = tmp_path / "models"
    with pytest.raises(ModelUnavailable, match=r"do not make the expected zip.*reinstall.*recommender\[quality\]"):
        ensure_unpacked(model, parts, root)
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []


def test_slices_in_the_wrong_order_are_refused(tmp_path: Path) -> None:
    model, parts = fake_parts(tmp_path)
    with pytest.raises(ModelUnavailable, match="do not make the expected zip"):
        ensure_unpacked(model, list(reversed(parts)), tmp_path / "models")


def test_a_zip_without_the_model_folder_is_refused(tmp_path: Path) -> None:
    model, parts = fake_parts(tmp_path)
    model = dataclasses.replace(model, name="other-name")
    with pytest.raises(ModelUnavailable, match="no model folder other-name/"):
        ensure_unpacked(model, parts, tmp_path / "models")
    assert not any(p.name.startswith("other-name-") for p in (tmp_path / "models").iterdir())


def test_missing_parts_say_what_to_install_in_one_line() -> None:
    model = dataclasses.replace(MPNET, parts=tuple((f"no-such-dist-{n}", f"x.zip.{n:03d}") for n in (1, 2)))
    with pytest.raises(ModelUnavailable) as caught:
        part_files(model)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "model all-mpnet-base-v2 is not installed (missing no-such-dist-1, no-such-dist-2): "
        "pip install 'recommender[quality]'"
    )


@pytest.mark.parametrize("name", ["all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"])
def test_both_names_resolve_to_the_unpacked_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    tiny, parts = fake_parts(tmp_path)
    stand_in = dataclasses.replace(tiny, aliases=MPNET.aliases)
    monkeypatch.setattr(packaged, "SPLIT_MODELS", (stand_in,))
    monkeypatch.setattr(packaged, "part_files", lambda model: parts)
    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    assert resolve_model_path(name) == str(tmp_path / "cache" / "models" / f"tiny-model-{tiny.sha256[:12]}")


def test_other_names_are_left_alone() -> None:
    assert resolve_model_path("/srv/models/my-model") == "/srv/models/my-model"
    assert resolve_model_path("intfloat/e5-small-v2") == "intfloat/e5-small-v2"


def test_cli_build_without_the_extra_is_one_line_and_an_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, articles_file: Path
) -> None:
    absent = dataclasses.replace(MPNET, parts=(("no-such-dist-001", "x.zip.001"),))
    monkeypatch.setattr(packaged, "SPLIT_MODELS", (absent,))
    result = CliRunner().invoke(
        app, ["build", str(articles_file), "--index", str(tmp_path / "index"), "--model", "all-mpnet-base-v2"]
    )
    assert result.exit_code != 0
    assert "pip install 'recommender[quality]'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("backend", ["onnx-int8", "onnx-int8-192"])
def test_int8_is_refused_for_mpnet_before_any_export(backend: str) -> None:
    mpnet = ModelFolder(
        path=Path("/nowhere"),
        label="all-mpnet-base-v2",
        transformer=Path("/nowhere"),
        pooling="mean",
        max_seq_length=384,
        model_type="mpnet",
        num_heads=12,
        hidden_size=768,
        pad_id=1,
    )
    with pytest.raises(ModelUnavailable, match=f"{backend} does not work for all-mpnet-base-v2.*--backend onnx"):
        check_backend_supports(mpnet, backend)
    check_backend_supports(mpnet, "onnx")  # fp32 matches torch: allowed
    check_backend_supports(dataclasses.replace(mpnet, model_type="bert"), backend)  # MiniLM's family: allowed


def test_a_new_mpnet_index_gets_a_backend_that_works_for_it() -> None:
    from recommender.embedding.base import DEFAULT_BACKEND, default_backend

    assert default_backend("all-mpnet-base-v2") == "onnx"
    assert default_backend("sentence-transformers/all-mpnet-base-v2") == "onnx"
    assert default_backend("sentence-transformers/all-MiniLM-L6-v2") == DEFAULT_BACKEND
