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
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from llada_export.graphs import ExportError
from llada_export.graphs import check_graph as _check_graph
from llada_export.graphs import commit_graph as _commit_graph
from llada_export.graphs import export_graph as _export_graph
from llada_export.graphs import graph_files as _files
from llada_export.graphs import quantize_int8 as _quantize_int8
from llada_export.parity import parity_run
from llada_export.sidecar import (
    GRAPH_GROUPS,
    OPSETS,
    PRECISIONS,
    GraphSpec,
    GreedyPolicy,
    ParityFigures,
    Sidecar,
    SpecialIds,
)
from llada_export.staging import check_out, source_of, swap_in
from llada_sdk._deps import require, require_torch

DEFAULT_OPSET = 20
DEFAULT_GRAPHS: tuple[str, ...] = ("logits", "greedy", "cache", "cache_greedy")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class ExportResult:
    """What ``export`` wrote: the bundle folder, its sidecar and the wall time."""

    folder: Path
    sidecar: Sidecar
    seconds: float


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
    guessed = source_of(model)
    check_out(out, target, guessed, overwrite)
    torch = require_torch()
    require("onnx", "onnx")
    require("onnxscript", "onnx")
    if threads is not None:
        torch.set_num_threads(threads)
    ids = {"mask": mask_token_id, "eos": eos_token_id, "eot": eot_token_id}
    net, config, source = _load_model(model, ids)
    if source is not None and source != guessed:  # a Hub id: its folder is known now
        check_out(out, target, source, overwrite)
    from llada_sdk.decoding.engine import DecodeConfig
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
    # it is the only thing ever deleted, besides the old bundle that `swap_in` moves into it
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
        swap_in(bundle, target, stage, out, overwrite)
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
