"""Options and helpers shared by the commands: the model flags, loading, stdin prompts, output.

Nothing here imports torch or rich at module level; both are imported inside the functions that
need them, so ``llada --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from llada_sdk.loading import BUNDLED_MODEL, is_repo_id

if TYPE_CHECKING:
    from llada_sdk import LLaDA, TextResult

F = TypeVar("F", bound=Callable[..., Any])

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _check_model(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Reject a model that is neither the bundled name, a directory, nor a Hub repo id (no network)."""
    if value is None or value == BUNDLED_MODEL:
        return value
    path = Path(value).expanduser()
    if path.is_dir():
        return value
    if path.exists():
        raise click.BadParameter(f"{value!r} is a file; pass the directory that holds config.json", ctx, param)
    if not is_repo_id(value):
        raise click.BadParameter(f"no such model directory {value!r} (and not a Hub repo id owner/name)", ctx, param)
    return value


_BACKEND = "llada.backend"  # ctx.meta: {"backend": ..., "providers": [...]} from --backend / --provider


def _store_backend(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_BACKEND, {})[str(param.name)] = value
    return value


def model_options(f: F) -> F:
    """``-m/--model`` (env ``LLADA_MODEL``), ``--device``, ``--dtype``, ``--backend``, ``--provider``,
    ``--compile`` and ``--prepack``."""
    f = click.option(
        "--prepack",
        "prepack",
        is_flag=True,
        expose_value=False,
        callback=_store_backend,
        help="torch backend on a CPU, float32: reorder the linear weights for oneDNN once at load "
        "(faster decoding steps, most with --cache).",
    )(f)
    f = click.option(
        "--compile",
        "compile",
        is_flag=True,
        expose_value=False,
        callback=_store_backend,
        help="torch backend: decode through torch.compile (faster steps after a one-off compilation of "
        "tens of seconds; worth it for long or repeated generations).",
    )(f)
    f = click.option(
        "--provider",
        "providers",
        multiple=True,
        metavar="NAME",
        expose_value=False,
        callback=_store_backend,
        help="onnx backend: an execution provider to try, in order (tensorrt, cuda, cpu; repeatable). "
        "[default: tensorrt, cuda, cpu -- those the onnxruntime build has]",
    )(f)
    f = click.option(
        "--backend",
        type=click.Choice(["auto", "torch", "onnx"]),
        default="auto",
        show_default=True,
        expose_value=False,
        callback=_store_backend,
        help="What runs the model: auto (an exported bundle's onnxruntime, else torch), torch or onnx.",
    )(f)
    f = click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default="auto",
        show_default=True,
        help="Weights dtype; auto keeps the checkpoint's own.",
    )(f)
    f = click.option(
        "--device",
        default=None,
        metavar="DEVICE",
        help="cpu, cuda, cuda:1 ... [default: cuda when available, else cpu]",
    )(f)
    f = click.option(
        "-m",
        "--model",
        default=None,
        envvar="LLADA_MODEL",
        show_envvar=True,
        callback=_check_model,
        metavar="PATH|REPO",
        help=f"Model directory, cached Hub repo id (owner/name) or {BUNDLED_MODEL}. "
        f"[default: {BUNDLED_MODEL}, the bundled model]",
    )(f)
    return f


def json_option(help: str = "Print one JSON object (its `text` field is the text).") -> Callable[[F], F]:
    """``--json``: one JSON object on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def view_option(f: F) -> F:
    """``--view/--no-view``: the live canvas (default on a terminal)."""
    return click.option(
        "--view/--no-view",
        default=None,
        help="Show the canvas live as it denoises. [default: on when stdout is a terminal]",
    )(f)


def wants_view(view: bool | None, as_json: bool) -> bool:
    """The live view is on when asked for, or by default on a terminal without ``--json``."""
    if view:
        why = "--json prints one object" if as_json else None if sys.stdout.isatty() else "stdout is not a terminal"
        if why:
            click.echo(f"note: --view ignored ({why}); printing the final text only", err=True)
            return False
        return True
    if view is not None:
        return False
    return not as_json and sys.stdout.isatty()


def stdin_is_terminal() -> bool:
    return sys.stdin is None or sys.stdin.isatty()


def text_or_stdin(value: str | None, name: str) -> str:
    """The argument ``value``; when absent (or ``-``), all of stdin if it is not a terminal."""
    if value is not None and value != "-":
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise click.UsageError(f"Invalid value for '{name}': not valid UTF-8 text ({exc.reason})") from exc
        if not value.strip():
            raise click.UsageError(f"Invalid value for '{name}': it is empty")
        return value
    if stdin_is_terminal():
        raise click.UsageError(f"Missing argument '{name}' (give it, or pipe it on stdin)")
    raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
    try:
        text = raw.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError as exc:
        raise click.UsageError(
            f"Invalid value for '{name}': stdin is not valid UTF-8 (byte {exc.start}: {exc.reason}); "
            "convert it first, e.g. iconv -t UTF-8"
        ) from exc
    if not text.strip():
        raise click.UsageError(f"Missing argument '{name}': stdin is empty")
    return text


@contextlib.contextmanager
def busy(message: str, enabled: bool = True) -> Iterator[None]:
    """A transient spinner on stderr when it is a terminal (and ``enabled``); nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def load_model(model: str | None, device: str | None, dtype: str) -> LLaDA:
    """``LLaDA.from_pretrained`` behind a spinner; errors name the flag at fault."""
    with busy(f"Loading {model or BUNDLED_MODEL}…"):
        from llada_sdk import LLaDA
        from llada_sdk.errors import LLaDAError, ModelNotFoundError

        chosen = click.get_current_context().meta.get(_BACKEND, {})
        extra: dict[str, Any] = {}
        if chosen.get("providers"):
            if chosen.get("backend", "auto") == "torch":
                raise click.BadParameter("--provider applies to the onnx backend only", param_hint="'--provider'")
            extra["providers"] = list(chosen["providers"])
        for flag in ("compile", "prepack"):
            if chosen.get(flag):
                if chosen.get("backend", "auto") == "onnx":
                    raise click.BadParameter(f"--{flag} applies to the torch backend only", param_hint=f"'--{flag}'")
                extra[flag] = True
        try:
            return LLaDA.from_pretrained(
                model,
                device=device,
                dtype=None if dtype == "auto" else dtype,
                backend=chosen.get("backend", "auto"),
                **extra,
            )
        except TypeError as exc:
            for flag in ("compile", "prepack"):
                if f"`{flag}`" in str(exc):
                    raise click.BadParameter(
                        f"--{flag} applies to the torch backend (this model is an exported ONNX bundle)",
                        param_hint=f"'--{flag}'",
                    ) from exc
            if "providers" in str(exc):
                raise click.BadParameter(
                    "--provider applies to an exported ONNX bundle (this model loads with torch)",
                    param_hint="'--provider'",
                ) from exc
            raise
        except ModelNotFoundError as exc:
            raise click.BadParameter(str(exc), param_hint="'-m' / '--model'") from exc
        except LLaDAError:
            raise
        except ValueError as exc:
            for name, flag in (
                ("`device`", "'--device'"),
                ("`backend`", "'--backend'"),
                ("provider", "'--provider'"),
                ("`prepack`", "'--prepack'"),
            ):
                if name in str(exc):
                    raise click.BadParameter(str(exc), param_hint=flag) from exc
            raise


def result_dict(result: TextResult) -> dict[str, Any]:
    """The JSON form of a ``TextResult`` (token ids left out)."""
    return {
        "text": result.text,
        "fills": result.fills,
        "lengths": result.lengths,
        "finish_reason": result.finish_reason,
        "forward_passes": result.forward_passes,
        "forward_passes_saved": result.forward_passes_saved,
        "backend": result.backend,
    }


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def emit_result(result: TextResult, as_json: bool) -> None:
    """Print a text result: its text, or its JSON object."""
    if as_json:
        emit_json(result_dict(result))
    else:
        click.echo(result.text)
