"""Chat templates rendered in a bounded jinja2 sandbox.

A chat template comes with a checkpoint: it is code from someone else. jinja2's immutable sandbox blocks
attribute tricks and mutation; the limits here bound what it leaves open: time and memory (``range``
sizes, value and output sizes, integer sizes, rendering time), each named in the error.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from llada_sdk.errors import TokenizerError

TEMPLATE_MAX_RANGE = 10_000
"""Most items a ``range()`` in a chat template may have (jinja2's sandbox allows 100 000)."""

TEMPLATE_MAX_SIZE = 1_000_000
"""Most characters (or items) a chat template may build in one value, and output in all, besides four
times the text it is given (a template may copy the messages a few times)."""

TEMPLATE_MAX_INT_BITS = 100_000
"""Largest integer (in bits) a ``*`` or ``**`` in a chat template may compute."""

TEMPLATE_TIMEOUT_S = 2.0
"""Longest a chat template may take to render (a real one takes milliseconds)."""

_clock = time.monotonic  # a module attribute: tests replace it with a fake clock


@dataclass
class _Budget:
    """What one rendering may still spend: a deadline and a size for every value and the output."""

    deadline: float
    size: int
    output: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("llada_template_budget", default=None)
_SIZED = (str, list, tuple, dict)
_FORMAT_NUMBER = re.compile(r"[%:][^%:}\w]*?(\d+)|\.(\d+)")  # widths and precisions of %-style and {}-style specs


def _limit(what: str) -> TokenizerError:
    return TokenizerError(f"chat template: {what}")


def _tick() -> _Budget:
    """The running rendering's budget, after checking its deadline."""
    budget = _BUDGET.get()
    if budget is None:  # pragma: no cover - hooks only run inside _render
        raise _limit("rendered outside the sandbox")
    if _clock() > budget.deadline:
        raise _limit(f"rendering ran past the sandbox's time limit of {TEMPLATE_TIMEOUT_S:g} s")
    return budget


def _weight(value: Any, cap: int) -> int:
    """Characters plus items of ``value`` and everything it holds, counted up to just past ``cap``."""
    total, stack = 0, [value]
    while stack and total <= cap:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, (list, tuple)):
            total += len(v)
            if total <= cap:
                stack.extend(v)
        elif isinstance(v, dict):
            total += len(v)
            if total <= cap:
                stack.extend(v.keys())
                stack.extend(v.values())
        else:
            total += 1
    return total


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_size(value: Any, what: str, budget: _Budget) -> Any:
    if isinstance(value, _SIZED) and _weight(value, budget.size) > budget.size:
        raise _limit(f"{what} builds a value over the sandbox's limit of {budget.size} characters or items")
    return value


def _check_ints(values: Sequence[Any], what: str, budget: _Budget, noun: str = "argument") -> None:
    """Refuse an integer argument larger than the size limit: a width, a count or a fill length."""
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > budget.size:
            raise _limit(f"{what}: {noun} {v} is over the sandbox's limit of {budget.size}")


def _check_format(fmt: str, args: Sequence[Any], what: str, budget: _Budget) -> None:
    """Refuse a format string whose widths or precisions (or ``*`` arguments) exceed the size limit."""
    numbers = [a or b for a, b in _FORMAT_NUMBER.findall(fmt)]
    _check_ints([int(n) if len(n) < 12 else budget.size + 1 for n in numbers], what, budget, "width")
    _check_ints(args, what, budget)


def _materialize(value: Any, budget: _Budget) -> Any:
    """An iterator (a lazy filter's output) as a list, refused once it grows past the size limit."""
    if not isinstance(value, Iterator):
        return value
    out: list[Any] = []
    total = 0
    for item in value:
        _tick()
        total += 1 + _weight(item, budget.size)
        if total > budget.size:
            raise _limit(f"an iterator yields more than the sandbox's limit of {budget.size} characters or items")
        out.append(item)
    return out


def _joined_size(items: Any, sep: str, budget: _Budget) -> int:
    if not isinstance(items, (list, tuple, str, dict)):
        return 0
    return sum(_weight(str(i) if not isinstance(i, _SIZED) else i, budget.size) for i in items) + len(sep) * len(items)


def _pre_check(
    name: str, value: Any, args: Sequence[Any], kwargs: dict[str, Any], budget: _Budget, method: bool = False
) -> None:
    """Size estimates of the filters (``value|name(args)``) and string methods (``value.name(args)``,
    ``method``) whose result can outgrow their inputs."""
    what = f"{name}()"
    _check_ints([*args, *kwargs.values()], what, budget)
    if name == "join":
        sep = args[0] if args and isinstance(args[0], str) else kwargs.get("d", "")
        if method and args:  # str.join(items): the separator is the bound string
            value, sep = args[0], value
        if _joined_size(value, sep if isinstance(sep, str) else "", budget) > budget.size:
            raise _limit(f"{what} would build more than the sandbox's limit of {budget.size} characters")
    elif name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        count = len(value) + 1 if not old else value.count(old)
        if len(value) + count * max(0, len(new) - len(old)) > budget.size:
            raise _limit(f"{what} would build more than the sandbox's limit of {budget.size} characters")
    elif name in ("indent", "expandtabs", "tojson") and isinstance(value, _SIZED):
        given = [*args, *kwargs.values()]
        width = next((a if isinstance(a, int) else len(a) for a in given if isinstance(a, (int, str))), 0)
        lines = value.count("\n") + value.count("\t") + 1 if isinstance(value, str) else _weight(value, budget.size)
        if lines * abs(width) > budget.size:
            raise _limit(f"{what} would build more than the sandbox's limit of {budget.size} characters")
    elif name in ("format", "format_map") and isinstance(value, str):
        _check_format(value, [*args, *kwargs.values()], what, budget)
    elif name == "sum" and isinstance(args[1] if len(args) > 1 else kwargs.get("start"), (str, list, tuple)):
        raise _limit("sum() of sequences takes quadratic time; the sandbox refuses it")


def _guard_filter(name: str, func: Any) -> Any:
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context or environment first

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _tick()
        args = args[:skip] + tuple(_materialize(a, budget) for a in args[skip:])
        if len(args) > skip:
            _pre_check(name, args[skip], args[skip + 1 :], kwargs, budget)
        return _check_size(func(*args, **kwargs), f"the {name} filter", budget)

    return guarded


def _bounded_range(*args: Any) -> range:
    _tick()
    rng = range(*args)
    if len(rng) > TEMPLATE_MAX_RANGE:
        shown = ", ".join(map(str, args))
        raise _limit(f"range({shown}) exceeds the sandbox's limit of {TEMPLATE_MAX_RANGE} items")
    return rng


def _raise_exception(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _guard_tree(tree: Any) -> Any:
    """Route what the sandbox has no hook for through the environment's checks: every loop's items,
    every ``~`` concatenation, every list, tuple and dict literal and every piece of output."""
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    def hook(name: str, *args: Any) -> Any:
        return nodes.Call(nodes.EnvironmentAttribute(name), list(args), [], None, None)

    class Guard(NodeTransformer):  # type: ignore[misc]
        def visit_For(self, node: Any) -> Any:
            node = self.generic_visit(node)
            node.iter = hook("llada_loop", node.iter)
            return node

        def visit_Concat(self, node: Any) -> Any:
            node = self.generic_visit(node)
            return hook("llada_concat", *node.nodes)

        def visit_List(self, node: Any) -> Any:
            return hook("llada_value", self.generic_visit(node))

        visit_Dict = visit_List

        def visit_Tuple(self, node: Any) -> Any:
            node = self.generic_visit(node)
            return hook("llada_value", node) if node.ctx == "load" else node

        def visit_Output(self, node: Any) -> Any:
            node = self.generic_visit(node)
            node.nodes = [hook("llada_out", child) for child in node.nodes]
            return node

    return Guard().visit(tree)


@functools.cache
def _sandbox_class() -> type:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):  # type: ignore[misc]
        intercepted_binops = frozenset({"*", "+", "%", "**"})

        def __init__(self) -> None:
            # optimized=False: no constant folding, which would evaluate expressions at compile time
            super().__init__(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, optimized=False)
            self.globals["range"] = _bounded_range
            self.globals["raise_exception"] = _raise_exception
            self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs; no chat template needs it
            self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            budget = _tick()
            what = f"{_short(left)} {operator} {_short(right)}"
            for side in (left, right):
                _check_size(side, what, budget)
            if operator == "*":
                seq, n = (left, right) if isinstance(left, _SIZED) else (right, left)
                if isinstance(seq, _SIZED) and isinstance(n, int):
                    if _weight(seq, budget.size) * n > budget.size:
                        raise _limit(f"{what} would build more than the sandbox's limit of {budget.size} items")
                elif isinstance(left, int) and isinstance(right, int):
                    if left.bit_length() + right.bit_length() > TEMPLATE_MAX_INT_BITS:
                        raise _limit(f"{what} exceeds the sandbox's limit of {TEMPLATE_MAX_INT_BITS}-bit integers")
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
                if left.bit_length() * right > TEMPLATE_MAX_INT_BITS:
                    raise _limit(f"{what} exceeds the sandbox's limit of {TEMPLATE_MAX_INT_BITS}-bit integers")
            elif operator == "+" and isinstance(left, _SIZED) and isinstance(right, _SIZED):
                if _weight(left, budget.size) + _weight(right, budget.size) > budget.size:
                    raise _limit(f"{what} would build more than the sandbox's limit of {budget.size} items")
            elif operator == "%" and isinstance(left, str):
                _check_format(left, right if isinstance(right, tuple) else (right,), what, budget)
            return _check_size(super().call_binop(context, operator, left, right), what, budget)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            budget = _tick()
            args = tuple(_materialize(a, budget) for a in args)
            name = getattr(__obj, "__name__", type(__obj).__name__)
            if isinstance(getattr(__obj, "__self__", None), str) and __obj is not _bounded_range:
                _pre_check(name, __obj.__self__, args, kwargs, budget, method=True)
            return _check_size(super().call(__context, __obj, *args, **kwargs), f"{name}()", budget)

        def wrap_str_format(self, value: Any) -> Any:
            """``str.format`` / ``format_map`` (jinja2 >= 3.1.5 wraps them here), with their widths checked."""
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None
            fmt = value.__self__

            def checked(*args: Any, **kwargs: Any) -> Any:
                budget = _tick()
                given = [*args, *kwargs.values()]
                if value.__name__ == "format_map" and args and isinstance(args[0], dict):
                    given = list(args[0].values())
                _check_format(fmt, given, "str.format()", budget)
                return _check_size(wrapped(*args, **kwargs), "str.format()", budget)

            return checked

        def format_string(self, s: str, args: Any, kwargs: Any, format_func: Any = None) -> Any:
            """``str.format`` for jinja2 < 3.1.5, which routes it here from ``call``."""
            budget = _tick()
            _check_format(s, [*args, *kwargs.values()], "str.format()", budget)
            base = getattr(super(), "format_string")  # noqa: B009 - absent from the stubs of jinja2 >= 3.1.5
            return _check_size(base(s, args, kwargs, format_func), "str.format()", budget)

        # the hooks _guard_tree routes loops, ``~``, literals and output through

        def llada_loop(self, iterable: Any) -> Iterator[Any]:
            for item in iterable:
                _tick()
                yield item

        def llada_concat(self, *parts: Any) -> Any:
            budget = _tick()
            if sum(_weight(p, budget.size) for p in parts) > budget.size:
                raise _limit(f"`~` would build more than the sandbox's limit of {budget.size} characters")
            return _check_size("".join(map(str, parts)), "`~`", budget)

        def llada_value(self, value: Any) -> Any:
            return _check_size(value, "a literal", _tick())

        def llada_out(self, value: Any) -> Any:
            budget = _tick()
            budget.output += _weight(value, budget.size)
            if budget.output > budget.size:
                raise _limit(f"the rendered text exceeds the sandbox's limit of {budget.size} characters")
            return value

    return Sandbox


@functools.lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    env = _sandbox_class()()
    tree = _guard_tree(env.parse(template))
    return env.template_class.from_code(env, env.compile(tree), env.make_globals(None), None)


def _render(template: str, **context: Any) -> str:
    """Render a chat template in the bounded sandbox (``TEMPLATE_*`` limits); TokenizerError otherwise."""
    from jinja2.exceptions import TemplateError

    given = _weight(list(context.values()), 1 << 62)
    budget = _Budget(deadline=_clock() + TEMPLATE_TIMEOUT_S, size=TEMPLATE_MAX_SIZE + 4 * given)
    token = _BUDGET.set(budget)
    try:
        out = []
        for chunk in _compile(template).generate(**context):
            _tick()
            out.append(chunk)
        return "".join(out)
    except TokenizerError:
        raise
    except TemplateError as exc:
        raise TokenizerError(f"chat template failed to render: {exc}") from exc
    except Exception as exc:  # a template's own errors (TypeError, RecursionError...) are its author's
        raise TokenizerError(f"chat template failed to render: {type(exc).__name__}: {exc}") from exc
    finally:
        _BUDGET.reset(token)
