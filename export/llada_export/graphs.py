"""The graphs of an edge bundle: the torch modules each graph traces, ``torch.onnx.export`` with
symbolic batch and sequence dimensions (asserted on the saved graph), the weightless ``commit`` graph
built from ONNX operators, the checks of a saved graph, and int8 quantisation. Imports torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llada_export.sidecar import TensorSpec
from llada_sdk._deps import require, require_torch
from llada_sdk.errors import LLaDAError

_ONNX_TYPES = {1: "float32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


class ExportError(LLaDAError, RuntimeError):
    """The exporter could not produce a correct bundle (a specialised dimension, a failed check)."""


def candidates(logits: Any, decode: Any) -> tuple[Any, Any]:
    """The engine's own logits -> ``(x0, confidence)`` rule, ``llada_sdk.decoding.policies.candidates`` on torch
    tensors (the policy code itself, traced -- not a rewrite). ``decode``: a ``DecodeConfig``."""
    from llada_sdk.decoding import policies

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


def export_graph(
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


def commit_graph(path: Path, opset: int, mask_id: int, confidence_dtype: str) -> None:
    """The ``commit`` graph: one budgeted step's choice and commit, on the device, so that the canvas
    stays there between steps (``StepMaskPredictor``). Inputs: the canvas ``input_ids``, the ``greedy``
    graph's ``x0`` and ``confidence``, ``k`` [B] and ``end`` (a scalar); outputs ``next_ids`` and
    ``chosen``. It is the engine's budgeted commit (``engine.commit`` with ``policies.select_top_k``)
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


def check_graph(onnx: Any, path: Path, role: str) -> tuple[list[TensorSpec], list[TensorSpec]]:
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


def graph_files(path: Path) -> tuple[str | None, int]:
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


def quantize_int8(src: Path, dst: Path, external: bool, vocab: int) -> None:
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
