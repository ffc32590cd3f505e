"""PyTorch -> ONNX: the edge bundle of a LLaDA model (``llada export`` / ``llada_export.export``).

Every graph is exported from the PyTorch model of ``llada_sdk.model`` with ``torch.onnx.export(dynamo=True)``
and symbolic batch and sequence dimensions (asserted on the saved graph), checked with the ONNX
checker, and compared with PyTorch at the end of the export (the figures go into the sidecar).

Graphs (``--graphs`` picks groups; each graph file holds its own copy of the weights):

- ``logits``: ``(input_ids, attention_mask) -> logits`` (float32): everything (temperature, CFG, scoring).
- ``greedy``: the model and the policy's candidate choice traced together -- the same torch function
  the engine uses to turn logits into ``(x0, confidence)``, with the EOS/EOT rules inside -- so the
  host loop moves ``[B, L]`` integers and floats, not ``[B, L, V]`` logits. The group also writes
  ``commit`` (weightless, built from ONNX operators: ``_commit_graph``), one budgeted step's top-k commit,
  which lets a GPU keep the canvas on the device between steps (the runtime's ``StepPredictor``).
- ``cache``: Fast-dLLM's caches: ``cache_open`` (``input_ids -> logits, present_keys, present_values``,
  keys/values ``[layers, B, kv_heads, L, head_dim]``) and ``cache_step`` (``input_ids`` of canvas
  positions ``start ..``, ``past_keys``, ``past_values``, ``start -> logits``), both tracing
  ``LLaDAModel.forward_cached``; ``cache_greedy``: the same with the fused greedy head.

Opset 20 (torch's default): opset 23 would emit the fused ``Attention`` op, but onnxruntime then needs
the key-padding bias expanded to ``[B, 1, L, L]`` and on the CPU it measured no faster. Precision:
``fp32``; ``fp16`` (exported from the model cast to float16, RMSNorm and RoPE stay float32 as in
PyTorch; for GPUs); ``int8`` (onnxruntime's dynamic quantisation of every weight MatMul but the LM head, for CPUs).
onnxruntime's own tools are used, not optimum-onnx (it pins transformers < 4.58 and forces the legacy
TorchScript exporter, which cannot export RMSNorm).

Imports torch (the runtime, ``llada_export.runtime``, does not).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from llada_export.sidecar import (
    FORMAT,
    GRAPH_GROUPS,
    MAX_SIDECAR_BYTES,
    OPSETS,
    PRECISIONS,
    SIDECAR,
    GraphSpec,
    GreedyPolicy,
    ParityFigures,
    Sidecar,
    SpecialIds,
    TensorSpec,
)
from llada_sdk._deps import require, require_torch
from llada_sdk.errors import LLaDAError

DEFAULT_OPSET = 20
DEFAULT_GRAPHS: tuple[str, ...] = ("logits", "greedy", "cache", "cache_greedy")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_ONNX_TYPES = {1: "float32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


class ExportError(LLaDAError, RuntimeError):
    """The exporter could not produce a correct bundle (a specialised dimension, a failed check)."""


@dataclass
class ExportResult:
    """What ``export`` wrote: the bundle folder, its sidecar and the wall time."""

    folder: Path
    sidecar: Sidecar
    seconds: float


# -- wrappers: what each graph traces --------------------------------------------------------------


def candidates(logits: Any, decode: Any) -> tuple[Any, Any]:
    """The engine's own logits -> ``(x0, confidence)`` rule, ``llada_sdk.policies.candidates`` on torch
    tensors (the policy code itself, traced -- not a rewrite). ``decode``: a ``DecodeConfig``."""
    from llada_sdk import policies

    x0, conf = policies.candidates(logits, decode.rules, None)
    return x0, conf.float()


def _wrappers() -> dict[str, type]:
    torch = require_torch()
    nn = torch.nn

    class Logits(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, model: Any, decode: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids, attention_mask).float()

    class Greedy(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, model: Any, decode: Any) -> None:
            super().__init__()
            self.model, self.decode = model, decode

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return candidates(self.model(input_ids, attention_mask), self.decode)

    class CacheOpen(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, model: Any, decode: Any) -> None:
            super().__init__()
            self.model, self.decode = model, decode

        def forward(self, input_ids: Any) -> Any:
            logits, kv = self.model.forward_cached(input_ids)
            keys, values = torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])
            if self.decode is None:
                return logits.float(), keys, values
            return (*candidates(logits, self.decode), keys, values)

    class CacheStep(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, model: Any, decode: Any) -> None:
            super().__init__()
            self.model, self.decode = model, decode

        def forward(self, input_ids: Any, past_keys: Any, past_values: Any, start: Any) -> Any:
            # `start` is data: tell torch.export the bounds that make the cache slices well formed
            s = start.item()
            total, n = past_keys.shape[3], input_ids.shape[1]
            torch._check(past_values.shape[3] == total)
            torch._check_is_size(s)
            torch._check(s <= total)
            torch._check(s + n <= total)
            cache = [(past_keys[i], past_values[i]) for i in range(past_keys.shape[0])]
            logits, _ = self.model.forward_cached(input_ids, cache, s)
            if self.decode is None:
                return logits.float()
            return candidates(logits, self.decode)

    return {"logits": Logits, "greedy": Greedy, "cache_open": CacheOpen, "cache_step": CacheStep}


_IO = {
    "logits": (["input_ids", "attention_mask"], ["logits"]),
    "greedy": (["input_ids", "attention_mask"], ["x0", "confidence"]),
    "commit": (["input_ids", "x0", "confidence", "k", "end"], ["next_ids", "chosen"]),
    "cache_open": (["input_ids"], ["logits", "present_keys", "present_values"]),
    "cache_open_greedy": (["input_ids"], ["x0", "confidence", "present_keys", "present_values"]),
    "cache_step": (["input_ids", "past_keys", "past_values", "start"], ["logits"]),
    "cache_step_greedy": (["input_ids", "past_keys", "past_values", "start"], ["x0", "confidence"]),
}
# which outputs/inputs carry the batch and sequence dimensions (they must stay symbolic)
_SYMBOLIC = {
    "input_ids": (0, 1),
    "attention_mask": (0, 1),
    "logits": (0, 1),
    "x0": (0, 1),
    "confidence": (0, 1),
    "next_ids": (0, 1),
    "chosen": (0, 1),
    "k": (0,),
}
_SYMBOLIC_KV = {"past_keys": (1, 3), "past_values": (1, 3), "present_keys": (1, 3), "present_values": (1, 3)}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress prints, warnings and logs are not the user's business."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_graph(
    torch: Any, model: Any, role: str, decode: Any, path: Path, opset: int, max_length: int, external: bool | None
) -> None:
    base = role.removesuffix("_greedy")
    module = _wrappers()[base](model, decode if role.endswith("greedy") else None).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=2, max=max(max_length, 16))
    inputs, outputs = _IO[role]
    gen = torch.Generator().manual_seed(0)
    V = model.config.vocab_size
    if base in ("logits", "greedy"):
        ids = torch.randint(0, V, (2, 16), generator=gen)
        args: tuple[Any, ...] = (ids, torch.ones_like(ids))
        dyn: dict[str, Any] = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    elif base == "cache_open":
        args = (torch.randint(0, V, (2, 16), generator=gen),)
        dyn = {"input_ids": {0: batch, 1: seq}}
    else:
        total = torch.export.Dim("total", min=2, max=max(max_length, 24))
        with torch.inference_mode():
            _, kv = model.forward_cached(torch.randint(0, V, (2, 24), generator=gen))
        keys = torch.stack([k for k, _ in kv]).clone()
        values = torch.stack([v for _, v in kv]).clone()
        args = (torch.randint(0, V, (2, 8), generator=gen), keys, values, torch.tensor(8))
        dyn = {
            "input_ids": {0: batch, 1: seq},
            "past_keys": {1: batch, 3: total},
            "past_values": {1: batch, 3: total},
            "start": None,
        }
    with _quiet():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=dyn,
            verbose=False,
        )
        program.save(str(path), external_data=external)


def _commit_graph(path: Path, opset: int, mask_id: int, confidence_dtype: str) -> None:
    """The ``commit`` graph: one budgeted step's choice and commit, on the device, so that the canvas
    stays there between steps (``StepMaskPredictor``). Inputs: the canvas ``input_ids``, the ``greedy``
    graph's ``x0`` and ``confidence``, ``k`` [B] and ``end`` (a scalar); outputs ``next_ids`` and
    ``chosen``. It is the engine's budgeted commit (``engine._commit`` with ``policies.select_top_k``)
    written in ONNX operators -- the per-row ``k`` of the torch policy is a Python loop that does not
    trace: eligible are the masked positions left of ``end``; per row the ``k`` highest confidences
    win, ties to the lower index (the policy's stable sort: each position's rank is counted by pairwise
    comparison, ``[B, L, L]`` -- small next to the ``[B, L, V]`` logits -- because onnxruntime's CUDA
    ``TopK`` orders equal values arbitrarily on long rows), and a chosen masked position takes its
    candidate. Weightless (a few hundred bytes); ``parity_run`` checks it against the engine."""
    onnx = require("onnx", "onnx")
    h, tp = onnx.helper, onnx.TensorProto
    conf_type = {"float32": tp.FLOAT, "float16": tp.FLOAT16}[confidence_dtype]
    nodes = [
        h.make_node("Constant", [], ["mask_id"], value=h.make_tensor("m", tp.INT64, [], [mask_id])),
        h.make_node("Constant", [], ["one"], value=h.make_tensor("o", tp.INT64, [1], [1])),
        h.make_node("Constant", [], ["two"], value=h.make_tensor("t", tp.INT64, [1], [2])),
        h.make_node("Constant", [], ["zero_s"], value=h.make_tensor("z", tp.INT64, [], [0])),
        h.make_node("Constant", [], ["one_s"], value=h.make_tensor("u", tp.INT64, [], [1])),
        h.make_node("Constant", [], ["neg_inf"], value=h.make_tensor("n", tp.FLOAT, [], [float("-inf")])),
        h.make_node("Equal", ["input_ids", "mask_id"], ["masked"]),
        h.make_node("Shape", ["input_ids"], ["shape"]),
        h.make_node("Gather", ["shape", "one_s"], ["length"], axis=0),  # L, a scalar
        h.make_node("Range", ["zero_s", "length", "one_s"], ["positions"]),  # [L]
        h.make_node("Less", ["positions", "end"], ["before_end"]),
        h.make_node("And", ["masked", "before_end"], ["eligible"]),
        h.make_node("Where", ["masked", "x0", "input_ids"], ["candidate"]),
        h.make_node("Cast", ["confidence"], ["conf32"], to=tp.FLOAT),
        h.make_node("Where", ["eligible", "conf32", "neg_inf"], ["score"]),
        # rank[b, i] = #{j: s_j > s_i} + #{j < i: s_j == s_i} -- the stable descending order, by pairwise
        # comparison ([B, L, L]; TopK is not used: its CUDA kernel orders equal values arbitrarily)
        h.make_node("Unsqueeze", ["score", "two"], ["s_i"]),  # [B, L, 1]
        h.make_node("Unsqueeze", ["score", "one"], ["s_j"]),  # [B, 1, L]
        h.make_node("Greater", ["s_j", "s_i"], ["above"]),
        h.make_node("Equal", ["s_j", "s_i"], ["same"]),
        h.make_node("Unsqueeze", ["positions", "one"], ["i_col"]),  # [L, 1]
        h.make_node("Less", ["positions", "i_col"], ["left"]),  # [L, L]: j < i
        h.make_node("And", ["same", "left"], ["tie_before"]),
        h.make_node("Or", ["above", "tie_before"], ["ahead"]),
        h.make_node("Cast", ["ahead"], ["ahead_n"], to=tp.INT32),
        h.make_node("ReduceSum", ["ahead_n", "two"], ["rank32"], keepdims=0),
        h.make_node("Cast", ["rank32"], ["rank"], to=tp.INT64),
        h.make_node("Unsqueeze", ["k", "one"], ["k_col"]),
        h.make_node("Less", ["rank", "k_col"], ["chosen"]),
        h.make_node("Where", ["chosen", "candidate", "input_ids"], ["next_ids"]),
    ]
    graph = h.make_graph(
        nodes,
        "llada_commit",
        [
            h.make_tensor_value_info("input_ids", tp.INT64, ["batch", "seq"]),
            h.make_tensor_value_info("x0", tp.INT64, ["batch", "seq"]),
            h.make_tensor_value_info("confidence", conf_type, ["batch", "seq"]),
            h.make_tensor_value_info("k", tp.INT64, ["batch"]),
            h.make_tensor_value_info("end", tp.INT64, []),
        ],
        [
            h.make_tensor_value_info("next_ids", tp.INT64, ["batch", "seq"]),
            h.make_tensor_value_info("chosen", tp.BOOL, ["batch", "seq"]),
        ],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="llada-export")
    model.ir_version = min(model.ir_version, 10)
    onnx.save(model, str(path))


def _check_graph(onnx: Any, path: Path, role: str) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """ONNX checker, then: the batch and sequence dims are symbolic. Returns the IO specs."""
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ExportError(f"{path}: the ONNX checker refused the exported graph ({exc})") from exc
    proto = onnx.load(str(path), load_external_data=False)

    def specs(values: Any) -> list[TensorSpec]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims: list[str | int] = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
            out.append(TensorSpec(name=v.name, dtype=_ONNX_TYPES.get(t.elem_type, str(t.elem_type)), dims=dims))
        return out

    ins, outs = specs(proto.graph.input), specs(proto.graph.output)
    for spec in [*ins, *outs]:
        for axis in {**_SYMBOLIC, **_SYMBOLIC_KV}.get(spec.name, ()):
            if not isinstance(spec.dims[axis], str):
                raise ExportError(
                    f"{path}: dimension {axis} of `{spec.name}` was specialised to {spec.dims[axis]} "
                    f"during export; the {role} graph would only accept that size"
                )
    return ins, outs


def _files(path: Path) -> tuple[str | None, int]:
    data = path.with_name(path.name + ".data")
    external = data.name if data.is_file() else None
    return external, path.stat().st_size + (data.stat().st_size if external else 0)


def lm_head_nodes(graph: Any, vocab: int) -> list[str]:
    """The ``MatMul`` nodes of an ONNX graph whose weight initializer has ``vocab`` output columns:
    the LM head (at LLaDA-8B's sizes no other weight has 126 464 columns)."""
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and any((shapes.get(i) or [0])[-1] == vocab for i in node.input[1:])
    ]


def _quantize_int8(src: Path, dst: Path, external: bool, vocab: int) -> None:
    """Dynamic int8 quantisation of the weight MatMuls, except the LM head: its logits are the token
    choice and the confidence that orders the unmasking, and quantising it moved one of the bundled
    model's eval tasks by 6.7 points (docs/benchmarks.md); it stays float."""
    quant = require("onnxruntime.quantization", "onnx")
    onnx = require("onnx", "onnx")
    head = lm_head_nodes(onnx.load(str(src), load_external_data=False).graph, vocab)
    if len(head) != 1:
        raise ExportError(f"{src}: expected one LM-head MatMul with {vocab} output columns, found {head}")
    with _quiet():
        logging.getLogger().setLevel(logging.ERROR)
        quant.quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul"],  # weight MatMuls only (activation x activation stays float)
            weight_type=quant.QuantType.QInt8,
            per_channel=False,
            nodes_to_exclude=head,
            use_external_data_format=external,
        )


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("llada-sdk", "torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _load_model(
    model: Any, ids: dict[str, int | None]
) -> tuple[Any, Any, Path | None]:  # (LLaDAModel float32 on cpu, LLaDAConfig, source folder)
    torch = require_torch()
    from llada_sdk.model import LLaDAModel

    if isinstance(model, LLaDAModel):
        return model.float().eval(), model.config, None
    if isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a path, an LLaDA or an LLaDAModel, got {type(model).__name__}")
    from llada_sdk import LLaDA

    llm = model
    if not isinstance(model, LLaDA):
        llm = LLaDA.from_pretrained(
            model,
            backend="torch",
            device="cpu",
            dtype="float32",
            mask_token_id=ids["mask"],
            eos_token_id=ids["eos"],
            eot_token_id=ids["eot"],
        )
    net = getattr(llm, "model", None)
    if net is None:
        net = llm.backend.model
    source = llm.source.path if getattr(llm, "source", None) is not None else None
    return net.float().eval(), llm.config, source


# -- where the bundle goes: checks, the staging folder, the swap -----------------------------------


def _within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def _is_bundle(folder: Path) -> bool:
    """Whether ``folder`` holds an llada-onnx sidecar (``format`` only: a bundle whose export was
    interrupted, or that an older version wrote, is still one that ``--overwrite`` may replace)."""
    path = folder / SIDECAR
    try:
        if not path.is_file() or path.stat().st_size > MAX_SIDECAR_BYTES:
            return False
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and raw.get("format") == FORMAT


def _source_of(model: Any) -> Path | None:
    """The model folder ``export`` will read, when known without loading it (a Hub id: after loading)."""
    from llada_sdk.loading import BUNDLED_DIR, BUNDLED_MODEL

    if model is None or (isinstance(model, str | os.PathLike) and os.fspath(model) == BUNDLED_MODEL):
        return BUNDLED_DIR
    if isinstance(model, str | os.PathLike):
        path = Path(model).expanduser()
        return path if path.is_dir() else None
    source = getattr(model, "source", None)
    return getattr(source, "path", None)


def _check_out(out: Path, target: Path, source: Path | None, overwrite: bool) -> None:
    """Refuse an ``out`` that the export must not replace. ``target``: ``out`` resolved (symlinks too).

    Raises:
        ValueError: naming ``out`` and why.
    """
    cwd = Path.cwd().resolve()
    if _within(cwd, target):
        what = "is" if target == cwd else "contains"
        raise ValueError(
            f"`out` {out} {what} the current working directory {cwd}; export into a new folder, e.g. ./llada-onnx"
        )
    if source is not None:
        src = source.expanduser().resolve()
        if _within(target, src) or _within(src, target):
            what = "is" if target == src else ("lies inside" if _within(target, src) else "contains")
            raise ValueError(f"`out` {out} {what} the source model folder {src}; pick a folder outside it")
    if not target.exists():
        return
    if not target.is_dir():
        raise ValueError(f"`out` {out} exists and is not a folder; pick another path")
    if not any(target.iterdir()):
        return  # an empty folder may be used
    if not overwrite:
        raise ValueError(
            f"`out` {out} exists and is not empty; pass overwrite=True (--overwrite) to replace an llada bundle"
        )
    if not _is_bundle(target):
        raise ValueError(
            f"`out` {out} is not an llada bundle (no {SIDECAR} with format {FORMAT!r}); overwrite replaces only "
            "a bundle written by `llada export`: pick another path or empty the folder yourself"
        )


def _swap_in(new: Path, target: Path, stage: Path, out: Path, overwrite: bool) -> None:
    """Move the finished bundle ``new`` to ``target``: into its place, or over an empty folder, or, with
    ``overwrite``, over an old bundle: the old one moves aside into ``stage`` first (its deletion is the
    caller's deletion of ``stage``), and back if the move in fails. Same filesystem: renames are atomic."""
    if target.is_dir() and any(target.iterdir()):
        if not (overwrite and _is_bundle(target)):  # changed since the checks at the start
            raise ValueError(f"`out` {out} changed during the export and is no longer a bundle to replace")
        old = stage / "old"
        os.rename(target, old)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(old, target)
            raise
        return
    if target.is_dir():
        target.rmdir()  # empty: rmdir removes nothing else
    os.rename(new, target)


def export(
    model: Any = None,
    out: str | Path = "llada-onnx",
    *,
    precision: str = "fp32",
    graphs: Sequence[str] = DEFAULT_GRAPHS,
    opset: int = DEFAULT_OPSET,
    mask_token_id: int | None = None,
    eos_token_id: int | None = None,
    eot_token_id: int | None = None,
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    reference_compat: bool = False,
    external_data: bool | None = None,
    parity: bool = True,
    overwrite: bool = False,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a LLaDA model to an edge bundle directory.

    Args:
        model: what ``LLaDA.from_pretrained`` takes (None: the bundled model; a directory; a Hub id),
            a loaded ``LLaDA``, or an ``LLaDAModel``.
        out: the bundle directory to create.
        precision: ``fp32``, ``fp16`` (GPUs) or ``int8`` (dynamic quantisation, CPUs).
        graphs: groups from ``logits``, ``greedy``, ``cache``, ``cache_greedy``.
        opset: ONNX opset (18-22 tested range; see the module docstring for 23).
        mask_token_id, eos_token_id, eot_token_id: id overrides, as in ``from_pretrained``.
        logits_eos_inf, confidence_eos_eot_inf, reference_compat: the EOS/EOT rules baked into the
            fused greedy graphs (runs with other settings use the ``logits`` graph).
        external_data: weights in ``<graph>.onnx.data`` (None: only above the 2 GB protobuf limit).
        parity: compare every graph with PyTorch at the end (figures in the sidecar). False skips it
            deliberately: the sidecar records ``parity_skipped: true`` (a bundle whose ``parity`` is
            empty without it is an unfinished export, which does not load).
        overwrite: replace an existing ``out`` that is an llada bundle (has ``llada_onnx.json``); any
            other non-empty ``out`` is refused. An empty folder is used without it.
        threads: torch and onnxruntime threads for the export and the parity run (None: unchanged).
        log: called with one line per stage (the CLI prints them).

    The bundle is written into a staging folder beside ``out`` (``.<name>.*.llada-export``) and moved
    into place only when the export and its parity check succeeded; on any failure or interrupt only
    the staging folder is removed and ``out`` is untouched. ``out`` must not be, contain or lie inside
    the source model folder, nor be or contain the current working directory.

    Raises:
        ValueError: a bad argument (naming it, the allowed values and what was given), or an ``out``
            that must not be written (naming it and why).
        ExportError: a check of the exported graphs failed.
    """
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    groups = list(dict.fromkeys(graphs))
    unknown = [g for g in groups if g not in GRAPH_GROUPS]
    if unknown or not groups:
        raise ValueError(f"`graphs` must be a non-empty subset of {', '.join(GRAPH_GROUPS)}, got {list(graphs)!r}")
    if not OPSETS[0] <= opset <= OPSETS[1]:
        raise ValueError(
            f"`opset` must be between {OPSETS[0]} and {OPSETS[1]} (default {DEFAULT_OPSET}), got {opset!r}"
        )
    out = Path(out).expanduser()
    target = out.resolve()
    guessed = _source_of(model)
    _check_out(out, target, guessed, overwrite)
    torch = require_torch()
    require("onnx", "onnx")
    require("onnxscript", "onnx")
    if threads is not None:
        torch.set_num_threads(threads)
    ids = {"mask": mask_token_id, "eos": eos_token_id, "eot": eot_token_id}
    net, config, source = _load_model(model, ids)
    if source is not None and source != guessed:  # a Hub id: its folder is known now
        _check_out(out, target, source, overwrite)
    from llada_sdk.engine import DecodeConfig
    from llada_sdk.options import GenerationOptions

    if confidence_eos_eot_inf and config.eot_token_id is None:
        raise ValueError("`confidence_eos_eot_inf` needs the EOT id: pass `eot_token_id`")
    greedy = GenerationOptions(
        logits_eos_inf=logits_eos_inf, confidence_eos_eot_inf=confidence_eos_eot_inf, reference_compat=reference_compat
    )
    decode = DecodeConfig.from_options(
        greedy, mask_id=config.mask_token_id, eos_id=config.eos_token_id, eot_id=config.eot_token_id
    )
    traced = net
    if precision == "fp16":
        import copy

        traced = copy.deepcopy(net).half()
    target.parent.mkdir(parents=True, exist_ok=True)
    # everything is written under `stage`, beside `target` (one filesystem: the final rename is atomic);
    # it is the only thing ever deleted, besides the old bundle that `_swap_in` moves into it
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".llada-export", dir=target.parent))
    try:
        bundle = stage / "new"
        bundle.mkdir()
        roles = [r for g in groups for r in GRAPH_GROUPS[g]]
        flags = (logits_eos_inf, confidence_eos_eot_inf, reference_compat)
        sidecar = _write_bundle(
            bundle, traced, config, decode, source, roles, precision, opset, external_data, flags, say
        )
        if parity:
            figures = parity_run(bundle, net, decode, threads=threads, sidecar=sidecar)
            sidecar = sidecar.model_copy(update={"parity": figures})
            for role, fig in figures.items():
                say(f"parity {role}: " + ", ".join(f"{k} {v:.3g}" for k, v in _numbers(fig).items()))
            if precision == "fp32":
                bad = {r: f.argmax_agreement for r, f in figures.items() if (f.argmax_agreement or 1.0) < 0.99}
                if bad:
                    raise ExportError(
                        f"{out}: float32 graphs disagree with PyTorch on the argmax: {bad}; the bundle was not written"
                    )
        else:
            sidecar = sidecar.model_copy(update={"parity_skipped": True})
        sidecar.write(bundle)  # last: a folder without it is not a bundle
        _swap_in(bundle, target, stage, out, overwrite)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult(folder=out, sidecar=sidecar, seconds=time.perf_counter() - t0)


def _write_bundle(
    out: Path,
    traced: Any,
    config: Any,
    decode: Any,
    source: Path | None,
    roles: list[str],
    precision: str,
    opset: int,
    external_data: bool | None,
    policy_flags: tuple[bool, bool, bool],
    say: Callable[[str], None],
) -> Sidecar:
    """Export, check (and quantise) every graph of ``roles`` into ``out`` and copy the tokenizer files;
    returns the sidecar, not yet written (``export`` writes it last, after the parity run).
    ``traced``: the model to trace (float16 for ``fp16``); ``policy_flags``: the greedy graphs'
    ``(logits_eos_inf, confidence_eos_eot_inf, reference_compat)``."""
    torch = require_torch()
    onnx = require("onnx", "onnx")
    logits_eos_inf, confidence_eos_eot_inf, reference_compat = policy_flags
    specs: dict[str, GraphSpec] = {}
    with tempfile.TemporaryDirectory(prefix="llada-export-") as tmp:
        for role in roles:
            t = time.perf_counter()
            target = out / f"{role}.onnx"
            quantized = precision == "int8" and role != "commit"  # the commit graph has no weights
            path = Path(tmp) / target.name if quantized else target
            if role == "commit":
                conf = next((o.dtype for o in specs["greedy"].outputs if o.name == "confidence"), "float32")
                _commit_graph(path, opset, config.mask_token_id, conf)
            else:
                _export_graph(torch, traced, role, decode, path, opset, config.max_sequence_length, external_data)
            ins, outs = _check_graph(onnx, path, role)
            if quantized:
                _quantize_int8(path, target, bool(external_data), int(config.embedding_size or config.vocab_size))
                onnx.checker.check_model(str(target))
            ext, size = _files(target)
            policy = None
            if role.endswith("greedy"):
                policy = GreedyPolicy(
                    eos_id=config.eos_token_id,
                    eot_id=config.eot_token_id,
                    logits_eos_inf=logits_eos_inf,
                    confidence_eos_eot_inf=confidence_eos_eot_inf,
                    reference_compat=reference_compat,
                )
            specs[role] = GraphSpec(
                file=target.name, role=role, inputs=ins, outputs=outs, bytes=size, external_data=ext, policy=policy
            )  # type: ignore[arg-type]
            say(f"exported {role} ({size / 1e6:.1f} MB, {time.perf_counter() - t:.1f} s)")
    tokenizer = False
    if source is not None:
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, out / name)
                tokenizer = tokenizer or name == "tokenizer.json"
    from llada_sdk.options import GenerationOptions

    return Sidecar(
        precision=precision,  # type: ignore[arg-type]
        opset=opset,
        config=config.to_hf_dict(),
        special_ids=SpecialIds(
            mask=config.mask_token_id,
            eos=config.eos_token_id,
            eot=config.eot_token_id,
            bos=config.bos_token_id,
            pad=config.pad_token_id,
        ),
        context_length=config.max_sequence_length,
        graphs=specs,
        options=GenerationOptions().model_dump(mode="json"),
        tokenizer=tokenizer,
        exported_with=_versions(),
        source=str(source) if source is not None else None,
    )


def _numbers(fig: ParityFigures) -> dict[str, float]:
    return {k: float(v) for k, v in fig.model_dump().items() if isinstance(v, int | float) and k != "cases"}


# -- the parity run --------------------------------------------------------------------------------


def _probes(config: Any) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Probe canvases: a plain batch, a left-padded batch with its mask, a half-masked long row."""
    rng = np.random.default_rng(0)
    V = config.vocab_size
    a = rng.integers(0, V, (2, 16))
    b = rng.integers(0, V, (2, 23))
    b_mask = np.ones_like(b)
    b_mask[1, :5] = 0
    b[1, :5] = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    c = rng.integers(0, V, (1, 37))
    c[0, rng.random(37) < 0.5] = config.mask_token_id
    return [(a, None), (b, b_mask), (c, None)]


def _commit_pairs(backend: Any, decode: Any, probes: list[tuple[np.ndarray, np.ndarray | None]]) -> list[Any]:
    """The ``commit`` graph against the engine's own commit (``engine._commit``) on the probe canvases
    with masks, for several budgets and block ends, and on coarsened confidences (many exact ties):
    pairs of ``[next_ids, chosen]`` (graph, engine)."""
    from llada_sdk.engine import _commit

    rng = np.random.default_rng(1)
    session, greedy = backend.session("commit"), backend._plain(decode)
    conf_dtype = next(t.dtype for t in session.spec.inputs if t.name == "confidence")
    pairs = []
    for ids, am in probes:
        canvas = ids.copy()
        canvas[rng.random(ids.shape) < 0.6] = decode.mask_id
        x0, conf = greedy(canvas, am)
        conf = conf.astype(np.float16 if conf_dtype == "float16" else np.float32)
        L = canvas.shape[1]
        for ties in (False, True):
            c = np.round(conf, 1) if ties else conf
            for end, k in ((L, 1), (L // 2, 3), (L, L)):  # k = L: more than the eligible positions
                budget = np.full(canvas.shape[0], k, dtype=np.int64)
                budget[0] = max(0, k - 1)  # rows with different budgets
                got_ids, got_chosen = session.run(
                    {"input_ids": canvas, "x0": x0, "confidence": c, "k": budget, "end": np.array(end, dtype=np.int64)}
                )
                want = canvas.copy()
                chosen = _commit(want, 0, (x0, c), end, budget, decode, None)
                pairs.append(
                    (np.stack([got_ids, got_chosen.astype(np.int64)]), np.stack([want, chosen.astype(np.int64)]))
                )
    return pairs


def parity_run(
    folder: Path, net: Any, decode: Any, *, threads: int | None = None, sidecar: Sidecar | None = None
) -> dict[str, ParityFigures]:
    """Run every graph of the bundle in ``folder`` on the CPU provider against the float32 PyTorch
    model ``net`` and return per-graph figures (the export writes them into the sidecar).
    ``sidecar``: the bundle's sidecar when ``folder`` has none yet (during the export, which writes
    it last); None reads ``folder``'s."""
    torch = require_torch()
    from llada_export.providers import parse_providers
    from llada_export.runtime import OnnxBackend, load_bundle

    if sidecar is None:
        backend, _ = load_bundle(folder, providers="cpu", threads=threads)
    else:
        backend = OnnxBackend(folder, sidecar, parse_providers("cpu"), threads=threads)
    config = backend.config
    figures: dict[str, ParityFigures] = {}
    provider = ""

    def record(role: str, pairs: list[tuple[np.ndarray, np.ndarray]], conf: list[tuple[Any, Any]] | None) -> None:
        diffs = [np.abs(g - r) for g, r in pairs]
        fig: dict[str, Any] = {"provider": provider, "cases": len(pairs)}
        if conf is None:
            fig["logits_max_abs"] = float(max(d.max() for d in diffs))
            fig["logits_mean_abs"] = float(np.mean([d.mean() for d in diffs]))
            fig["argmax_agreement"] = float(
                np.mean(np.concatenate([(g.argmax(-1) == r.argmax(-1)).ravel() for g, r in pairs]))
            )
        else:
            fig["argmax_agreement"] = float(np.mean(np.concatenate([(g == r).ravel() for g, r in pairs])))
            if conf:
                fig["confidence_max_abs"] = float(max(np.abs(g - r).max() for g, r in conf))
        figures[role] = ParityFigures(**fig)

    probes = _probes(config)
    with torch.inference_mode():
        refs = [net(torch.from_numpy(ids), None if am is None else torch.from_numpy(am)) for ids, am in probes]
        ref_np = [r.float().numpy() for r in refs]
        if backend.has("logits"):
            session = backend.session("logits")
            provider = session.providers[0]
            pred = backend._plain(None)
            record("logits", [(pred(ids, am), r) for (ids, am), r in zip(probes, ref_np)], None)
        if backend.has("greedy"):
            session = backend.session("greedy")
            provider = session.providers[0]
            got = [backend._plain(decode)(ids, am) for ids, am in probes]
            want = [candidates(r.clone(), decode) for r in refs]
            record(
                "greedy",
                [(g[0], w[0].numpy()) for g, w in zip(got, want)],
                [(g[1], w[1].numpy()) for g, w in zip(got, want)],
            )
        if backend.has("commit") and backend.has("greedy"):
            provider = backend.session("commit").providers[0]
            record("commit", _commit_pairs(backend, decode, probes), [])
        for fused in (False, True):
            suffix = "_greedy" if fused else ""
            if not backend.has("cache_open" + suffix):
                continue
            cached = backend.cached_predictor(fused)
            provider = cached.open.providers[0]
            opens, steps, open_conf, step_conf = [], [], [], []
            for ids, _ in probes:
                L = ids.shape[1]
                t_ids = torch.from_numpy(ids)
                ref_logits, kv = net.forward_cached(t_ids)
                out, past = cached.forward_cached(ids)
                for start, end in ((L // 4, L // 2), (L // 2, L), (L - 1, L)):  # dual, prefix, one token
                    ref_seg, _ = net.forward_cached(t_ids[:, start:end], kv, start)
                    seg, _ = cached.forward_cached(ids[:, start:end], past, start)
                    if fused:
                        w = candidates(ref_seg.clone(), decode)
                        steps.append((seg[0], w[0].numpy()))
                        step_conf.append((seg[1], w[1].numpy()))
                    else:
                        steps.append((seg, ref_seg.float().numpy()))
                if fused:
                    w = candidates(ref_logits.clone(), decode)
                    opens.append((out[0], w[0].numpy()))
                    open_conf.append((out[1], w[1].numpy()))
                else:
                    opens.append((out, ref_logits.float().numpy()))
            record("cache_open" + suffix, opens, open_conf if fused else None)
            record("cache_step" + suffix, steps, step_conf if fused else None)
    return figures
