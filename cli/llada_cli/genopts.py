"""Generation flags built from ``GenerationOptions.model_fields``: ``--max-tokens``, ``-o KEY VALUE``, ``/set``.

Every name, type, range, default and help text comes from the options model; nothing here declares a
generation option by hand. Values given on the command line are collected in ``ctx.meta`` and turned
into a validated ``GenerationOptions`` by ``resolve_options``.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource
from pydantic import BaseModel, ValidationError

from llada_cli.common import TEXT, bad_argument
from llada_sdk.options import GenerationOptions, format_validation_error

F = TypeVar("F", bound=Callable[..., Any])

_FLAGS = "llada.generation.flags"  # ctx.meta: {field: value} from the generated flags
_PAIRS = "llada.generation.pairs"  # ctx.meta: {field: value} from -o KEY VALUE
_NONE = {"none", "null"}
_GIVEN = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT}


if TYPE_CHECKING:
    AnyParamType = click.ParamType[Any, Any]  # generic from click 8.5 on
else:
    AnyParamType = click.ParamType


class _NullableMixin(AnyParamType):
    """Accept ``none``/``null`` as Python ``None`` (the model's default meaning, e.g. one block)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().lower() in _NONE:
            return None
        return super().convert(value, param, ctx)


class FiniteFloatRange(click.FloatRange):
    """A ``FloatRange`` that refuses nan and infinities with a message saying so."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = click.FLOAT.convert(value, param, ctx) if value is not None else value
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(value, param, ctx)


class NullableIntRange(_NullableMixin, click.IntRange):
    """An ``IntRange`` that also accepts ``none``."""


class NullableFloatRange(_NullableMixin, FiniteFloatRange):
    """A ``FloatRange`` that also accepts ``none``."""


@dataclass(frozen=True)
class FieldSpec:
    """How one ``GenerationOptions`` field appears on the command line."""

    name: str
    type: AnyParamType
    default: Any
    help: str
    is_flag: bool = False
    multiple: bool = False
    nullable: bool = False
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(args)
    return annotation, False


def _bounds(metadata: Iterable[Any]) -> dict[str, Any]:
    """``ge``/``gt``/``le``/``lt`` constraints of a pydantic field as click range arguments."""
    out: dict[str, Any] = {}
    for m in metadata:
        for attr, key, open_key in (
            ("ge", "min", None),
            ("gt", "min", "min_open"),
            ("le", "max", None),
            ("lt", "max", "max_open"),
        ):
            value = getattr(m, attr, None)
            if value is not None:
                out[key] = value
                if open_key:
                    out[open_key] = True
    return out


def _spec(name: str, model: type[BaseModel] = GenerationOptions) -> FieldSpec:
    field = model.model_fields[name]
    base, nullable = _unwrap_optional(field.annotation)
    default = [] if field.default_factory is not None else field.default
    help_text = (field.description or "").replace("`", "")
    if nullable:
        help_text += " Accepts 'none'."
    if typing.get_origin(base) is typing.Literal:
        return FieldSpec(name, click.Choice([str(a) for a in typing.get_args(base)]), default, help_text)
    if base is bool:
        return FieldSpec(name, click.BOOL, default, help_text, is_flag=True)
    if typing.get_origin(base) is list:
        return FieldSpec(name, TEXT, default, help_text + " Repeatable.", multiple=True, metavar="TEXT")
    bounds = _bounds(field.metadata)
    if base is int:
        ptype: AnyParamType = NullableIntRange(**bounds) if nullable else click.IntRange(**bounds)
        return FieldSpec(name, ptype, default, help_text, nullable=nullable, metavar="INT|none" if nullable else "INT")
    if base is float:
        ptype = NullableFloatRange(**bounds) if nullable else FiniteFloatRange(**bounds)
        return FieldSpec(
            name, ptype, default, help_text, nullable=nullable, metavar="FLOAT|none" if nullable else "FLOAT"
        )
    return FieldSpec(name, click.STRING, default, help_text)  # pragma: no cover - no such field today


@cache
def field_specs(model: type[BaseModel] = GenerationOptions) -> dict[str, FieldSpec]:
    """``{field name: FieldSpec}`` for every field of ``model`` (``GenerationOptions``, ``ScoreOptions``)."""
    return {name: _spec(name, model) for name in model.model_fields}


def normalize_key(key: str) -> str:
    """``max-tokens``, ``--max-tokens`` and ``max_tokens`` all name the field ``max_tokens``."""
    return key.strip().lstrip("-").replace("-", "_")


def convert_value(name: str, raw: str, ctx: click.Context | None = None) -> Any:
    """Parse the text ``raw`` as a value of field ``name`` (ranges checked; raises ``click.BadParameter``).

    A list field takes one item, a JSON list, or ``none`` / ``[]`` for the empty list."""
    spec = field_specs()[name]
    if spec.multiple:
        if raw.strip().lower() in _NONE or raw.strip() == "[]":
            return []
        if raw.strip().startswith("["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"not a JSON list of strings ({exc.msg})", ctx) from exc
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise click.BadParameter("expected a JSON list of strings", ctx)
        else:
            value = [raw]
        for item in value:
            why = bad_argument(item)
            if why is not None:
                raise click.BadParameter(why, ctx)
        return value
    return spec.type.convert(raw, None, ctx)


class GenerationOption(click.Option):
    """A click option generated from a field of an options model (``GenerationOptions`` by default)."""

    def __init__(self, spec: FieldSpec, default: Any, model: type[BaseModel] = GenerationOptions) -> None:
        self.field_name = spec.name
        self.model = model
        self.command_default = default
        kwargs: dict[str, Any] = {
            "help": spec.help,
            "show_default": True,
            "expose_value": False,
            "callback": _store_flag,
        }
        if spec.is_flag:
            decls = [f"{spec.flag}/--no-{spec.flag[2:]}", spec.name]
            kwargs.update(is_flag=True, default=default)
        elif spec.multiple:
            decls = [spec.flag, spec.name]
            kwargs.update(multiple=True, type=spec.type, metavar=spec.metavar, default=tuple(default))
        else:
            decls = [spec.flag, spec.name]
            kwargs.update(type=spec.type, default=default, metavar=spec.metavar)
        super().__init__(decls, **kwargs)


def _store_flag(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    assert param.name is not None
    if ctx.get_parameter_source(param.name) in _GIVEN and isinstance(param, GenerationOption):
        key = _FLAGS + "." + param.model.__name__
        ctx.meta.setdefault(key, {})[param.name] = list(value) if isinstance(value, tuple) else value
    return value


def _store_pairs(ctx: click.Context, param: click.Parameter, value: tuple[tuple[str, str], ...]) -> Any:
    allowed = {
        p.field_name for p in ctx.command.params if isinstance(p, GenerationOption) and p.model is GenerationOptions
    }
    store = ctx.meta.setdefault(_PAIRS, {})
    for key, raw in value:
        name = normalize_key(key)
        if name not in allowed:
            raise click.BadParameter(
                f"unknown generation option {key!r}; choose from: {', '.join(sorted(allowed))}", ctx, param
            )
        try:
            store[name] = convert_value(name, raw, ctx)
        except click.BadParameter as exc:
            raise click.BadParameter(exc.message, ctx, param_hint=f"'-o {name}'") from exc
    return value


def generation_options(
    *,
    exclude: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    pairs: bool = True,
    only: Iterable[str] | None = None,
    model: type[BaseModel] = GenerationOptions,
) -> Callable[[F], F]:
    """Decorator adding one flag per field of ``model`` (and ``-o KEY VALUE``) to a command.

    ``defaults`` replaces the model's default for this command (shown in its help); ``exclude`` and
    ``only`` select the fields that apply to it.
    """
    skip = set(exclude)
    keep = None if only is None else set(only)
    specs = field_specs(model).values()
    chosen = [s for s in specs if s.name not in skip and (keep is None or s.name in keep)]
    own = dict(defaults or {})

    def decorate(f: F) -> F:
        if pairs:
            names = ", ".join(s.name for s in chosen)
            f = click.option(
                "-o",
                "--option",
                "option_pairs",
                nargs=2,
                multiple=True,
                metavar="KEY VALUE",
                expose_value=False,
                callback=_store_pairs,
                help=f"Set any generation option by its field name ({names}); the flags above win.",
            )(f)
        for spec in reversed(chosen):
            option = GenerationOption(spec, own.get(spec.name, spec.default), model)
            f.__click_params__ = [*getattr(f, "__click_params__", []), option]  # type: ignore[attr-defined]
        return f

    return decorate


def resolve_options(ctx: click.Context) -> GenerationOptions:
    """The command's ``GenerationOptions``: its own defaults, then ``-o`` pairs, then explicit flags."""
    return resolve_model(ctx, GenerationOptions)


M = TypeVar("M", bound=BaseModel)


def resolve_model(ctx: click.Context, model: type[M]) -> M:
    """The command's options of ``model``: its own defaults, then ``-o`` pairs, then explicit flags."""
    values: dict[str, Any] = {}
    for p in ctx.command.params:
        if isinstance(p, GenerationOption) and p.model is model:
            if p.command_default != field_specs(model)[p.field_name].default:
                values[p.field_name] = p.command_default
    if model is GenerationOptions:
        values.update(ctx.meta.get(_PAIRS, {}))
    values.update(ctx.meta.get(_FLAGS + "." + model.__name__, {}))
    try:
        return model(**values)
    except ValidationError as exc:
        raise click.UsageError(f"invalid option combination: {describe_validation_error(exc)}", ctx) from exc


def describe_validation_error(exc: ValidationError, *, as_flags: bool = True) -> str:
    """``format_validation_error`` with field names written as the flags a user types (``--max-tokens``)."""
    text = format_validation_error(exc)
    if not as_flags:
        return text
    from llada_sdk.options import ScoreOptions

    names = {**field_specs(ScoreOptions), **field_specs()}
    return re.sub(r"`(\w+)`", lambda m: names[m[1]].flag if m[1] in names else m[0], text)


def set_option(options: GenerationOptions, key: str, raw: str) -> GenerationOptions:
    """``/set KEY VALUE``: a validated copy of ``options``; raises ``ValueError`` with a one-line message."""
    return set_options(options, [(key, raw)])


def set_options(options: GenerationOptions, pairs: list[tuple[str, str]]) -> GenerationOptions:
    """``/set K1 V1 K2 V2 ...``: all pairs applied together and validated as a whole (nothing is
    applied when any is invalid); raises ``ValueError`` with a one-line message."""
    values: dict[str, Any] = {}
    for key, raw in pairs:
        name = normalize_key(key)
        if name not in field_specs():
            raise ValueError(f"unknown option {key!r}; choose from: {', '.join(field_specs())}")
        try:
            values[name] = convert_value(name, raw)
        except click.BadParameter as exc:
            raise ValueError(f"{name}: {exc.message}") from exc
    try:
        return options.with_overrides(**values)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, as_flags=False)) from exc
