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


_BACKEND = "llada.backend"  # ctx.meta: {"backend": NAME, "options": {field: value}} from --backend and its flags


def _store_backend(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_BACKEND, {})[str(param.name)] = value
    return value


def _store_backend_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    assert param.name is not None
    if ctx.get_parameter_source(param.name) not in (None, click.core.ParameterSource.DEFAULT):
        ctx.meta.setdefault(_BACKEND, {}).setdefault("options", {})[param.name] = (
            list(value) if isinstance(value, tuple) else value
        )
    return value


def backend_flags() -> dict[str, tuple[str, list[str], Any]]:
    """``{option field: (flag, backends that take it, pydantic field)}`` over every backend plugin
    (torch built in, onnx and any installed third-party backend), in plugin order."""
    from llada_sdk.loading import backends

    flags: dict[str, tuple[str, list[str], Any]] = {}
    for name, plugin in backends().items():
        if plugin.options is None:
            continue
        for field, info in plugin.options.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            flag = "--" + str(extra.get("cli_flag", field)).replace("_", "-")
            if field in flags:
                flags[field][1].append(name)
            else:
                flags[field] = (flag, [name], info)
    return flags


def _backend_option(field: str, flag: str, owners: list[str], info: Any) -> Callable[[F], F]:
    """One click option for a backend option field (its type read from the pydantic field)."""
    import typing

    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    text = (info.description or "").rstrip(".")
    help_text = f"{'/'.join(owners)} backend: {text[:1].lower() + text[1:]}."
    kwargs: dict[str, Any] = {"expose_value": False, "callback": _store_backend_option, "help": help_text}
    args = [a for a in typing.get_args(info.annotation) if a is not type(None)]
    base = args[0] if len(args) == 1 else info.annotation
    if extra.get("cli_multiple"):
        kwargs.update(multiple=True, metavar="NAME")
    elif base is bool and info.default is None:
        return click.option(f"{flag}/--no-{flag[2:]}", field, default=None, **kwargs)
    elif base is bool:
        kwargs.update(is_flag=True, default=False)
    elif base is int:
        low = next((m.ge for m in info.metadata if getattr(m, "ge", None) is not None), None)
        kwargs.update(type=click.IntRange(min=low), default=None, metavar="N")
    return click.option(flag, field, **kwargs)


def model_options(f: F) -> F:
    """``-m/--model`` (env ``LLADA_MODEL``), ``--device``, ``--dtype``, ``--backend`` (every backend
    plugin) and each backend's own options as flags (``--compile``, ``--prepack``, ``--provider``, ...),
    all built from the plugins: an installed backend shows up here without CLI edits."""
    from llada_sdk.loading import backends

    found = backends()
    for field, (flag, owners, info) in reversed(list(backend_flags().items())):
        f = _backend_option(field, flag, owners, info)(f)
    described = "; ".join(f"{n}: {p.summary}" if p.summary else n for n, p in found.items())
    f = click.option(
        "--backend",
        type=click.Choice(["auto", *found]),
        default="auto",
        show_default=True,
        expose_value=False,
        callback=_store_backend,
        help=f"What runs the model: auto (a plugin's format, e.g. an exported bundle, else torch); {described}.",
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


MAX_INPUT_BYTES = 1 << 20
"""The most bytes taken from one input -- stdin, an argument, a --load or --schema file, a --jsonl line:
1 MiB. A prompt that fits a LLaDA context window is far smaller (LLaDA-8B: 4096 tokens, some 16 KiB of
English; even at 64 bytes a token, 256 KiB), and 1 MiB is read, decoded and refused in milliseconds.
Inputs are read up to one byte past it, never whole."""

_LIMIT = f"the {MAX_INPUT_BYTES}-byte (1 MiB) input limit"


def not_utf8(value: str) -> str | None:
    """Why ``value`` (from argv or an undecodable stream) is not UTF-8 text, or None. Python hands
    undecodable bytes of argv to click as lone surrogates (``errors="surrogateescape"``)."""
    for i, ch in enumerate(value):
        if "\ud800" <= ch <= "\udfff":
            byte = f"byte 0x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff" else f"lone surrogate {ch!r}"
            return f"not valid UTF-8 ({byte} at character {i}); convert it first, e.g. with iconv -t UTF-8"
    return None


def bad_argument(value: str) -> str | None:
    """Why ``value``, given as an argument or option, is refused: not UTF-8, or over ``MAX_INPUT_BYTES``."""
    why = not_utf8(value)
    if why is None and len(value.encode("utf-8")) > MAX_INPUT_BYTES:
        why = f"it is {len(value.encode('utf-8'))} bytes, over {_LIMIT}"
    return why


class Text(click.types.StringParamType):
    """Text of an argument or option: UTF-8 within ``MAX_INPUT_BYTES`` (one-line usage error otherwise)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        value = super().convert(value, param, ctx)
        why = bad_argument(value) if isinstance(value, str) else None
        if why is not None:
            self.fail(why, param, ctx)
        return value


TEXT = Text()


def read_limited(stream: Any, what: str) -> bytes:
    """At most ``MAX_INPUT_BYTES`` of a binary ``stream``; ValueError naming ``what`` past it."""
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(f"{what} is over {_LIMIT}; stopped reading there")
    return bytes(data)


def read_text_file(path: str | Path, what: str | None = None) -> str:
    """A UTF-8 file of at most ``MAX_INPUT_BYTES`` (``/dev/zero`` included: read up to the limit only).
    OSError when it cannot be read; ValueError naming it when too big or not UTF-8."""
    what = what or str(path)
    with open(path, "rb") as f:
        data = read_limited(f, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what}: not valid UTF-8 (byte {exc.start}: {exc.reason})") from exc


def read_history(path: str | Path) -> list[dict[str, str]]:
    """The messages of a JSON file (``--load``, ``/load``), read up to ``MAX_INPUT_BYTES`` only.
    OSError when it cannot be read; ValueError naming the file otherwise."""
    from llada_cli.messages import parse_messages

    messages = parse_messages(read_text_file(path), str(path))
    for i, m in enumerate(messages):
        why = not_utf8(m["content"])  # JSON's \u escapes can spell lone surrogates
        if why is not None:
            raise ValueError(f"{path}: message {i} content is {why}")
    return messages


def stdin_lines(name: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of stdin, each line at most ``MAX_INPUT_BYTES`` and UTF-8 (UsageError otherwise)."""
    stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
    number = 0
    while True:
        number += 1
        raw = stream.readline(MAX_INPUT_BYTES + 1) if stream is not None else sys.stdin.readline().encode("utf-8")
        if not raw:
            return
        if len(raw) > MAX_INPUT_BYTES:
            raise click.UsageError(f"Invalid value for '{name}': stdin line {number} is over {_LIMIT}")
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.UsageError(
                f"Invalid value for '{name}': stdin line {number} is not valid UTF-8 (byte {exc.start}: {exc.reason})"
            ) from exc


def text_or_stdin(value: str | None, name: str) -> str:
    """The argument ``value``; when absent (or ``-``), stdin if it is not a terminal (up to
    ``MAX_INPUT_BYTES``: a longer input is refused, not read whole)."""
    if value is not None and value != "-":
        why = bad_argument(value)
        if why is not None:
            raise click.UsageError(f"Invalid value for '{name}': {why}")
        if not value.strip():
            raise click.UsageError(f"Invalid value for '{name}': it is empty")
        return value
    if stdin_is_terminal():
        raise click.UsageError(f"Missing argument '{name}' (give it, or pipe it on stdin)")
    if hasattr(sys.stdin, "buffer"):
        try:
            raw = read_limited(sys.stdin.buffer, "stdin")
        except ValueError as exc:
            raise click.UsageError(f"Invalid value for '{name}': {exc}") from exc
    else:
        raw = sys.stdin.read(MAX_INPUT_BYTES + 1).encode("utf-8")
        if len(raw) > MAX_INPUT_BYTES:
            raise click.UsageError(f"Invalid value for '{name}': stdin is over {_LIMIT}")
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


def chosen_backend(ctx: click.Context, model: str | None) -> tuple[str, dict[str, Any]]:
    """The backend that will load ``model`` (``--backend``, or the plugin whose format the folder is,
    else torch) and the backend options given on the command line, checked against it: a flag of
    another backend is a usage error naming the flag."""
    from llada_sdk.errors import ModelNotFoundError
    from llada_sdk.loading import backends, resolve

    meta = ctx.meta.get(_BACKEND, {})
    given: dict[str, Any] = dict(meta.get("options", {}))
    name = meta.get("backend", "auto")
    found = backends()
    if name == "auto":
        try:
            folder = resolve(None if model == BUNDLED_MODEL else model).path
        except ModelNotFoundError as exc:
            raise click.BadParameter(str(exc), param_hint="'-m' / '--model'") from exc
        name = next((n for n, p in found.items() if n != "torch" and p.detect(folder)), "torch")
    plugin = found[name]
    takes = set(plugin.options.model_fields) if plugin.options is not None else set()
    flags = backend_flags()
    for field in given:
        if field not in takes:
            flag, owners, _ = flags[field]
            raise click.BadParameter(
                f"{flag} applies to the {'/'.join(owners)} backend (this model loads with {name})",
                param_hint=f"'{flag}'",
            )
    return name, given


def load_model(model: str | None, device: str | None, dtype: str) -> LLaDA:
    """``LLaDA.from_pretrained`` behind a spinner; errors name the flag at fault."""
    ctx = click.get_current_context()
    backend, options = chosen_backend(ctx, model)
    with busy(f"Loading {model or BUNDLED_MODEL}…"):
        from llada_sdk import LLaDA
        from llada_sdk.backends.base import BackendOptionError
        from llada_sdk.errors import LLaDAError, ModelNotFoundError

        try:
            return LLaDA.from_pretrained(
                model, device=device, dtype=None if dtype == "auto" else dtype, backend=backend, **options
            )
        except ModelNotFoundError as exc:
            raise click.BadParameter(str(exc), param_hint="'-m' / '--model'") from exc
        except LLaDAError:
            raise
        except BackendOptionError as exc:
            flag = backend_flags()[exc.option][0]
            raise click.BadParameter(str(exc), param_hint=f"'{flag}'") from exc
        except ValueError as exc:
            if "`device`" in str(exc):  # the one core parameter validated at load
                raise click.BadParameter(str(exc), param_hint="'--device'") from exc
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
