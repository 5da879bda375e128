"""The ``onnx`` and ``onnx-int8`` backends: the same model run by onnxruntime, without torch at query time.

Why this path and not ``sentence-transformers[onnx]``: that extra pulls optimum-onnx, which pins an older
transformers and so downgrades sentence-transformers. Here the model is exported once, locally, from the
weights that are already installed (nothing is downloaded):

1. ``torch.onnx.export`` of the transformer (eager attention, so onnxruntime recognises the pattern);
2. onnxruntime's transformer optimiser fuses attention, layer norms and GELU (BERT-family models);
3. for ``onnx-int8``, ``onnxruntime.quantization.quantize_dynamic`` stores weights as int8 (per channel).

Each step is checked against the torch model on a few texts before the file is kept. The files are cached in
``$RECOMMENDER_CACHE/onnx`` (default ``~/.cache/recommender/onnx``) under the model's fingerprint, written
atomically, and made again when missing. Embedding is then tokenizers (Rust) + onnxruntime + numpy: mean
pooling over the attention mask, L2 normalisation, truncation at the model's ``max_seq_length``, exactly as
sentence-transformers does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.embedding.base import MAX_BATCH_TOKENS, available_threads, default_cache_dir, normalise, plan_batches
from recommender.embedding.packaged import resolve_model_path
from recommender.errors import ModelUnavailable

log = logging.getLogger(__name__)

#: Bump when the export recipe changes, so cached files made by an older recipe are not reused.
RECIPE_VERSION = 1
ONNX_BACKENDS = ("onnx", "onnx-int8", "onnx-int8-192")
#: Backends that read fewer tokens than the model's ``max_seq_length``: the title and first paragraphs.
#: ``onnx-int8-192`` runs the ``onnx-int8`` file on the first 192 word pieces (about 140 words): attention is
#: quadratic in length, so it embeds about 1.25x faster than ``onnx-int8``, at eval scores within 0.5 point of
#: torch fp32 on every labelled set (docs/benchmarks.md; 128 tokens was faster still but lost 0.8 point on
#: MasakhaNEWS English). The window is part of the backend's name, so an index records it and its queries are
#: embedded the same way.
TOKEN_WINDOW = {"onnx-int8-192": 192}


def model_file_backend(backend: str) -> str:
    """Which ONNX file a backend runs: ``onnx-int8-192`` is ``onnx-int8``'s file with a shorter window."""
    return "onnx-int8" if backend.startswith("onnx-int8") else backend


#: Texts used to check an exported file against torch (short, long, non-English, empty-ish).
CHECK_TEXTS = (
    "Heavy rain flooded the river city; residents were evacuated overnight.",
    "The central bank raised interest rates by a quarter point to fight inflation. " * 20,
    "Le gouvernement a annoncé de nouvelles mesures.",
    "?",
)
#: Least cosine to the torch vector that each exported file must reach on :data:`CHECK_TEXTS` (a guard against
#: a broken export, not the quality bar: int8 scores about .97 on "?" and .99 on articles; the eval decides).
MIN_CHECK_COSINE = {"onnx": 0.9999, "onnx-int8": 0.95}
#: onnxruntime session settings. Worker threads sleep between operators instead of spinning: on a box whose cores
#: are shared with other jobs a spinning worker burns the time slice the other thread needs, and embedding with
#: small batches (:data:`~recommender.embedding.base.MAX_BATCH_TOKENS`) runs many short operators. Together with those
#: batches this took onnx-int8 from 1.8-2.4x to 3.4-4.5x torch on the shared 2-core box (docs/benchmarks.md).
SESSION_CONFIG = {"session.intra_op.allow_spinning": "0"}
#: Model types whose graphs onnxruntime's BERT optimiser knows how to fuse. Not ``mpnet`` (all-mpnet-base-v2): its
#: attention adds a relative position bias, so the optimiser fuses only bias-GELU and skip layer norms there, and
#: that file was no faster than the unfused one (0.36 vs 0.43 texts/s, interleaved on the shared 2-core box).
_FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "camembert", "electra"}
#: Model types whose dynamic int8 file is wrong, with what was measured. MPNet's activations have outliers (the
#: feed-forward inputs reach 25-55 where 99.9 % stay under 3-6), so one int8 scale per tensor wipes out the rest:
#: the vectors of all-mpnet-base-v2 came out at cosine 0.0 to torch per channel (also with only the feed-forward
#: products, or only the layers from the 3rd on), 0.2 with only the attention projections, 0.75 per tensor, 0.90
#: with reduced range (0.73 worst); layer 0 alone already gives 0.35-0.65.
#: Weight-only int8 (``MatMulNBits``, blocks of 32 or 128) was accurate (cosine 0.9985+) but slower than fp32.
_NO_INT8 = {
    "mpnet": "dynamic int8 quantisation of MPNet measured at cosine 0.0 to torch (activation outliers)",
}


def check_backend_supports(model: ModelFolder, backend: str) -> None:
    """Refuse, before any export, an onnx backend known to give wrong vectors for ``model``'s architecture."""
    reason = _NO_INT8.get(model.model_type)
    if reason and model_file_backend(backend) == "onnx-int8":
        raise ModelUnavailable(f"{backend} does not work for {model.label}: {reason}; use --backend onnx or torch")


def onnx_cache_dir() -> Path:
    """Where exported models live: ``$RECOMMENDER_CACHE/onnx``, else ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    return default_cache_dir() / "onnx"


@dataclass(frozen=True)
class ModelFolder:
    """What the ONNX path needs to know about a local sentence-transformers model folder."""

    path: Path
    label: str  # a readable name for the cache folder
    transformer: Path  # the folder holding config.json and the weights (module 0)
    pooling: str  # "mean" or "cls"
    max_seq_length: int
    model_type: str
    num_heads: int
    hidden_size: int
    pad_id: int = 0  # the id padding takes (MPNet: 1; its position ids count the tokens that are not padding)

    def fingerprint(self) -> str:
        """Hash of the model's files plus the recipe version: any change means a new export.

        Small files (configs, vocabulary) by content, weights by name, size and modification time, so loading
        an embedder does not read hundreds of megabytes just to find its cache entry.
        """
        digest = hashlib.sha256(f"recipe {RECIPE_VERSION}\n".encode())
        for path in sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            stat = path.stat()
            digest.update(f"{path.relative_to(self.path)}\0{stat.st_size}\0".encode())
            if stat.st_size <= 4 << 20:
                digest.update(path.read_bytes())
            else:
                digest.update(str(stat.st_mtime_ns).encode())
        return digest.hexdigest()[:16]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{path}: unreadable ({exc})") from None


def local_model_folder(name: str) -> Path:
    """The folder of ``name``: the packaged model, a local path, or a hub id already in the local cache."""
    path = Path(resolve_model_path(name))
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing to the user
        raise ModelUnavailable(
            f"the onnx backends need the model {name!r} as a local folder (or in the local hub cache): {exc}".splitlines()[  # noqa: E501
                0
            ]
        ) from None


def describe_model(folder: Path, label: str | None = None) -> ModelFolder:
    """Read a sentence-transformers folder: transformer module, pooling mode, maximum sequence length."""
    modules: list[dict[str, Any]] = _read_json(folder / "modules.json") if (folder / "modules.json").exists() else []
    transformer = folder
    pooling = "mean"
    for module in modules:
        kind = str(module.get("type", ""))
        sub = folder / str(module.get("path", ""))
        if kind.endswith("models.Transformer"):
            transformer = sub
        elif kind.endswith("models.Pooling"):
            config = _read_json(sub / "config.json") if (sub / "config.json").exists() else {}
            if config.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif config.get("pooling_mode_mean_tokens", True):
                pooling = "mean"
            else:
                raise ModelUnavailable(f"{folder}: the onnx backends support mean or CLS pooling only")
        elif not kind.endswith(("models.Normalize",)):
            raise ModelUnavailable(f"{folder}: module {kind!r} is not supported by the onnx backends (use torch)")
    config = _read_json(transformer / "config.json")
    st_config = transformer / "sentence_bert_config.json"
    max_len = int(_read_json(st_config).get("max_seq_length") or 0) if st_config.exists() else 0
    positions = int(config.get("max_position_embeddings", 512))
    if max_len <= 0 or max_len > positions:
        max_len = min(512, positions)
    if not (transformer / "tokenizer.json").exists():
        raise ModelUnavailable(f"{transformer}: no tokenizer.json (the onnx backends need a fast tokenizer)")
    return ModelFolder(
        path=folder,
        label=label or folder.name,
        transformer=transformer,
        pooling=pooling,
        max_seq_length=max_len,
        model_type=str(config.get("model_type", "")),
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        pad_id=int(config.get("pad_token_id") or 0),
    )


def cached_onnx_path(model: ModelFolder, backend: str, cache_dir: Path | None = None) -> Path:
    """The cache file for ``backend`` (``onnx``, or ``onnx-int8`` for both int8 backends) of ``model``."""
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"not an onnx backend: {backend!r}")
    backend = model_file_backend(backend)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model.label)[:60]
    folder = (cache_dir or onnx_cache_dir()) / f"{slug}-{model.fingerprint()}"
    return folder / ("model-int8.onnx" if backend == "onnx-int8" else "model.onnx")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and quantiser's advice (tracer warnings, 'consider pre-processing')."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)


def _export_fp32(model: ModelFolder, out: Path) -> Any:
    """Export the transformer to ONNX (dynamic batch and sequence axes); returns the torch model for checks."""
    import torch
    import transformers
    from transformers import AutoModel

    transformers.utils.logging.disable_progress_bar()
    torch_model = AutoModel.from_pretrained(str(model.transformer), attn_implementation="eager")
    torch_model.eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    if getattr(torch_model.config, "type_vocab_size", 0) <= 0:
        names = names[:2]

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

    # The example batch has padding: with an all-ones mask, transformers may skip the mask during tracing.
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros(2, 16, dtype=torch.long)}
    dummy = tuple(example[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with _quiet(), torch.no_grad():
        # The TorchScript exporter needs no extra packages (the dynamo one needs onnxscript); torch is pinned.
        torch.onnx.export(
            Wrapped(torch_model).eval(),
            dummy,
            str(out),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return torch_model.eval()  # the exporter restores the wrapper's mode; dropout must stay off for the checks


def _fuse(model: ModelFolder, path: Path) -> None:
    """Fuse attention / layer norm / GELU in place with onnxruntime's optimiser (BERT family only)."""
    if model.model_type not in _FUSABLE or not model.num_heads or not model.hidden_size:
        return
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet():
        optimised = optimize_model(
            str(path),
            model_type="bert",
            num_heads=model.num_heads,
            hidden_size=model.hidden_size,
            opt_level=1,
            use_gpu=False,
        )
        optimised.save_model_to_file(str(path))
    log.info("fused operators: %s", {k: v for k, v in optimised.get_fused_operator_statistics().items() if v})


def _quantise(src: Path, out: Path) -> None:
    """Dynamic int8 quantisation: int8 weights per output channel, activations quantised at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            src,
            out,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def _torch_vectors(torch_model: Any, model: ModelFolder, texts: Sequence[str]) -> np.ndarray:
    import torch

    tokenizer = load_tokenizer(model)
    ids, mask = _encode(tokenizer, texts, model.pad_id)
    feed = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if getattr(torch_model.config, "type_vocab_size", 0) > 0:
        feed["token_type_ids"] = torch.zeros_like(feed["input_ids"])
    with torch.no_grad():
        hidden = torch_model(**feed).last_hidden_state.numpy()
    return pool(hidden, mask, model.pooling)


def _check(path: Path, model: ModelFolder, backend: str, expected: np.ndarray) -> None:
    got = OnnxEmbedder.from_file(path, model, name="check", backend=backend, threads=1).embed(list(CHECK_TEXTS))
    worst = float(np.min(np.sum(got * expected, axis=1)))
    if worst < MIN_CHECK_COSINE[backend]:
        raise ModelUnavailable(
            f"the {backend} export of {model.path} differs from torch (cosine {worst:.4f}); use --backend torch"
        )
    log.info("%s export checked against torch: worst cosine %.5f", backend, worst)


def ensure_onnx_model(model: ModelFolder, backend: str, cache_dir: Path | None = None) -> Path:
    """The cached ONNX file for ``backend``, made (export, fuse, quantise, check) if it is missing.

    Safe against concurrent callers (a file lock) and crashes (temp files renamed into place).
    """
    from filelock import FileLock

    check_backend_supports(model, backend)
    backend = model_file_backend(backend)
    target = cached_onnx_path(model, backend, cache_dir)
    if target.exists():
        return target
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelUnavailable(f"cannot create the ONNX cache {folder}: {exc} (set RECOMMENDER_CACHE)") from None
    with FileLock(str(folder / ".lock"), timeout=600):
        if target.exists():
            return target
        log.warning("making the %s model for %s once (cached in %s)", backend, model.label, folder)
        fp32 = cached_onnx_path(model, "onnx", cache_dir)
        tmp_fp32 = folder / f".model.onnx.tmp-{os.getpid()}"
        tmp_int8 = folder / f".model-int8.onnx.tmp-{os.getpid()}"
        try:
            torch_model = _export_fp32(model, tmp_fp32)
            expected = _torch_vectors(torch_model, model, CHECK_TEXTS)
            if not fp32.exists():
                _fuse(model, tmp_fp32)
                _check(tmp_fp32, model, "onnx", expected)
                os.replace(tmp_fp32, fp32)
            if backend == "onnx-int8":
                _quantise(fp32, tmp_int8)
                _check(tmp_int8, model, "onnx-int8", expected)
                os.replace(tmp_int8, target)
        except ModelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - export failures are one clear message
            raise ModelUnavailable(f"cannot make the {backend} model: {exc}".splitlines()[0]) from exc
        finally:
            tmp_fp32.unlink(missing_ok=True)
            tmp_int8.unlink(missing_ok=True)
    return target


# -- running it ---------------------------------------------------------------------------------------------------
def load_tokenizer(model: ModelFolder) -> Any:
    """The model's fast tokenizer, truncating at ``max_seq_length`` (as sentence-transformers does); no padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model.transformer / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=model.max_seq_length)
    tokenizer.no_padding()
    return tokenizer


def _encode(tokenizer: Any, texts: Sequence[str], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, right-padded to the longest text of the batch."""
    encodings = tokenizer.encode_batch([t.strip() for t in texts])
    return _pad([e.ids for e in encodings], pad_id)


def _pad(rows: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for n, row in enumerate(rows):
        ids[n, : len(row)] = row
        mask[n, : len(row)] = 1
    return ids, mask


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str = "mean") -> np.ndarray:
    """Sentence vectors from token vectors: mean over real tokens (or the CLS token), L2-normalised."""
    if mode == "cls":
        return normalise(hidden[:, 0, :])
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    return normalise(summed / counts)


class OnnxEmbedder:
    """A sentence-transformers model run by onnxruntime (fp32 or int8), same vectors as the torch backend."""

    def __init__(
        self,
        name: str,
        backend: str = "onnx-int8",
        *,
        cache_dir: Path | None = None,
        threads: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if backend not in ONNX_BACKENDS:
            raise ModelUnavailable(f"unknown onnx backend {backend!r}")
        model = describe_model(local_model_folder(name), label=name)
        path = ensure_onnx_model(model, backend, cache_dir)
        self._init(path, model, name, backend, threads, max_tokens)

    @classmethod
    def from_file(
        cls,
        path: Path,
        model: ModelFolder,
        *,
        name: str,
        backend: str,
        threads: int | None = None,
        max_tokens: int | None = None,
    ) -> OnnxEmbedder:
        """An embedder over an existing ONNX file (no export)."""
        self = cls.__new__(cls)
        self._init(path, model, name, backend, threads, max_tokens)
        return self

    def _init(
        self, path: Path, model: ModelFolder, name: str, backend: str, threads: int | None, max_tokens: int | None
    ) -> None:
        import onnxruntime as ort

        self.name = name
        self.backend = backend
        self.model = model
        self.path = path
        self.max_tokens = max_tokens or MAX_BATCH_TOKENS
        self._tokenizer = load_tokenizer(model)
        self.window = min(TOKEN_WINDOW.get(backend, model.max_seq_length), model.max_seq_length)
        self._tokenizer.enable_truncation(max_length=self.window)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        for key, value in SESSION_CONFIG.items():
            options.add_session_config_entry(key, value)
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged cache file: remove it so the next load remakes it
            path.unlink(missing_ok=True)
            raise ModelUnavailable(f"{path}: unreadable ONNX file, removed; run again to remake it ({exc})") from None
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._dimension = int(self._session.get_outputs()[0].shape[-1] or model.hidden_size)

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for ``texts``: tokenised once, sorted by length, batched by a token budget."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([t.strip() for t in texts])
        lengths = [len(e.ids) for e in encodings]
        for batch in plan_batches(lengths, self.max_tokens):
            ids, mask = _pad([encodings[i].ids for i in batch], self.model.pad_id)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            out[batch] = pool(hidden, mask, self.model.pooling)
        return out
