"""Tokenizer files in the Hugging Face format and the chat template, without transformers.

``tokenizer.json`` is loaded with ``tokenizers``; ``tokenizer_config.json`` gives the special tokens and
the ``chat_template``, rendered in a sandboxed jinja2 environment the way Hugging Face renders it.

Text a user typed is always plain text: a string such as ``<|eot_id|>`` or ``<|mdm_mask|>`` inside a
prompt or a chat message is encoded as its characters, never as the control token. Only the chat
template itself may emit special tokens.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from llada_sdk.errors import TokenizerError
from llada_sdk.text.validate import check_unicode

Message = dict[str, str]
_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


@dataclass
class SpecialTokens:
    """Ids of the tokens the runtime needs; ``None`` where the tokenizer does not define one."""

    bos: int | None
    eos: int | None
    mask: int | None
    eot: int | None
    start_header: int | None
    end_header: int | None


PROBE_CHARS_PER_TOKEN = 8
"""A text longer than ``8 x limit`` characters is measured on prefixes first (``8 x limit`` characters,
then twice as many...): a prefix already over the limit proves the text cannot fit, and the rest is
never tokenized. Any text that fits is tokenized whole, exactly."""

_PROBE_MARGIN = 16  # tokens a cut through a word may add to a prefix's count
_UNSET: Any = object()


class Overflow(NamedTuple):
    """A text proved longer than a token limit: its first ``chars`` characters make ``tokens`` tokens;
    ``partial``: the rest was not tokenized."""

    chars: int
    tokens: int
    partial: bool = False


def _cut(text: str, size: int) -> int:
    """``size``, moved back to just before a whitespace when one is near (pre-tokenizers split there)."""
    for i in range(size, max(size - 64, 0), -1):
        if text[i].isspace():
            return i
    return size


class Tokenizer:
    """A ``tokenizers.Tokenizer`` plus the special-token and chat-template facts of tokenizer_config.json.

    ``context_window``: the longest token sequence of the model these files belong to (None: unknown);
    ``encode`` and ``apply_chat_template`` refuse text over it without tokenizing all of it. ``from_dir``
    reads it from ``max_sequence_length`` in the folder's config.json; loaders may set it.
    """

    def __init__(self, backend: Any, config: dict[str, Any], context_window: int | None = None) -> None:
        self._tok = backend
        self.config = config
        self.context_window = context_window
        self._frame: Any = _UNSET
        self.chat_template: str | None = config.get("chat_template")
        if isinstance(self.chat_template, list):  # several named templates: take "default"
            named = {t.get("name"): t.get("template") for t in self.chat_template}
            self.chat_template = named.get("default")
        self._special_strings = sorted(
            {t.content for t in backend.get_added_tokens_decoder().values() if t.special},
            key=len,
            reverse=True,
        )
        # special-token strings (and the sentinel characters themselves) inside user text
        self._protected = re.compile("|".join(re.escape(t) for t in [*self._special_strings, "\ue000", "\ue001"]))
        self.bos_token = _token_content(config.get("bos_token"))
        self.eos_token = _token_content(config.get("eos_token"))
        self.special = SpecialTokens(
            bos=self.token_to_id(self.bos_token or "<|startoftext|>"),
            eos=self.token_to_id(self.eos_token or "<|endoftext|>"),
            mask=self.token_to_id("<|mdm_mask|>"),
            eot=self.token_to_id("<|eot_id|>"),
            start_header=self.token_to_id("<|start_header_id|>"),
            end_header=self.token_to_id("<|end_header_id|>"),
        )
        self._special_ids = {i for i, t in backend.get_added_tokens_decoder().items() if t.special}

    @classmethod
    def from_dir(cls, path: str | Path) -> Tokenizer:
        """Load ``tokenizer.json`` (+ optional ``tokenizer_config.json``) from a directory; the context
        window comes from ``max_sequence_length`` in its config.json, when there is one."""
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(path)
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise TokenizerError(f"no tokenizer.json in {path}")
        try:
            backend = HFTokenizer.from_file(str(tok_file))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise TokenizerError(f"{tok_file}: cannot be read as a tokenizers file ({exc})") from exc
        config: dict[str, Any] = {}
        cfg_file = path / "tokenizer_config.json"
        if cfg_file.is_file():
            try:
                config = json.loads(cfg_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise TokenizerError(f"{cfg_file}: not valid JSON ({exc})") from exc
        return cls(backend, config, _window_of(path / "config.json"))

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def token_to_id(self, token: str) -> int | None:
        out = self._tok.token_to_id(token)
        return None if out is None else int(out)

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, text: str, *, bounded: bool = True) -> list[int]:
        """Encode user text; special-token strings in it stay plain text. No BOS/EOS is added.

        ``bounded`` (default): a text of more tokens than ``context_window`` is refused (ValueError),
        a long one before it is tokenized whole (``PROBE_CHARS_PER_TOKEN``); ``False`` encodes any length.
        """
        check_unicode(text, "the text to encode")
        if not text:
            return []
        out = self._measure(text, self.context_window if bounded else None, self._encode_plain)
        if isinstance(out, Overflow):
            raise ValueError(f"a text of {len(text):,} characters {self._over(out)}")
        return out

    def _encode_plain(self, text: str) -> list[int]:
        self._tok.encode_special_tokens = True
        try:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        finally:
            self._tok.encode_special_tokens = False

    def _encode_trusted(self, text: str) -> list[int]:
        """Encode template output: special-token strings become control tokens."""
        if not text:
            return []
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    @staticmethod
    def _measure(text: str, limit: int | None, encode: Callable[[str], list[int]]) -> list[int] | Overflow:
        """``encode(text)``, or an ``Overflow`` once the text is proved to have more than ``limit``
        tokens: a long text is measured on prefixes of growing length and never tokenized whole when
        one of them is already over."""
        if limit is None:
            return encode(text)
        size = max(limit, 1) * PROBE_CHARS_PER_TOKEN
        while size < len(text):
            cut = _cut(text, size)
            n = len(encode(text[:cut]))
            if n > limit + _PROBE_MARGIN:
                return Overflow(cut, n, partial=True)
            size *= 2
        ids = encode(text)
        return Overflow(len(text), len(ids)) if len(ids) > limit else ids

    def _over(self, out: Overflow, what: str = "characters") -> str:
        """Why a text does not fit: its length and the window."""
        how = (
            f"its first {out.chars:,} {what} are already {out.tokens:,} tokens (the rest was not tokenized)"
            if out.partial
            else f"it is {out.tokens:,} tokens"
        )
        return (
            f"does not fit this model's context window of {self.context_window} tokens "
            f"(`max_sequence_length` in config.json): {how}"
        )

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    # -- chat -----------------------------------------------------------------------------------

    def apply_chat_template(
        self, messages: Sequence[Message], add_generation_prompt: bool = True, *, bounded: bool = True
    ) -> list[int]:
        """Render ``messages`` with the chat template and encode the result without added specials.

        Special-token strings inside message contents are swapped for private sentinels before
        rendering and encoded as plain text afterwards, so a user cannot forge a turn boundary.
        ``bounded``: as in ``encode``, a conversation over ``context_window`` is refused (ValueError).
        """
        out = self.chat_ids(messages, add_generation_prompt, self.context_window if bounded else None)
        if isinstance(out, Overflow):
            raise ValueError(f"`messages`: the conversation {self._over(out, 'rendered characters')}")
        return out

    def chat_ids(
        self, messages: Sequence[Message], add_generation_prompt: bool = True, limit: int | None = None
    ) -> list[int] | Overflow:
        """The ids of ``apply_chat_template``, or an ``Overflow`` as soon as they are proved to be more
        than ``limit`` (the rest of the rendered text is not tokenized)."""
        if not self.chat_template:
            raise TokenizerError("this tokenizer has no `chat_template` in tokenizer_config.json")
        table: list[str] = []

        def protect(text: str) -> str:
            def repl(m: re.Match[str]) -> str:
                table.append(m.group(0))
                return f"\ue000{len(table) - 1}\ue001"

            return self._protected.sub(repl, text)

        safe = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError(f"`messages[{i}]` must be a dict with 'role' and 'content', got {m!r}")
            if not isinstance(m["content"], str):
                raise ValueError(f"`messages[{i}]['content']` must be a string, got {type(m['content']).__name__}")
            check_unicode(m["content"], f"`messages[{i}]['content']`")
            safe.append({"role": protect(str(m["role"])), "content": protect(m["content"])})
        rendered = _render(
            self.chat_template,
            messages=safe,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )
        ids: list[int] = []
        pos = 0
        pieces: list[tuple[int, str, Callable[[str], list[int]]]] = []
        for hit in _SENTINEL.finditer(rendered):
            pieces += [(pos, rendered[pos : hit.start()], self._encode_trusted)]
            pieces += [(hit.start(), table[int(hit.group(1))], self._encode_plain)]
            pos = hit.end()
        pieces.append((pos, rendered[pos:], self._encode_trusted))
        for start, text, encode in pieces:
            if not text:
                continue
            out = self._measure(text, None if limit is None else max(limit - len(ids), 0), encode)
            if isinstance(out, Overflow):
                return Overflow(
                    start + out.chars, len(ids) + out.tokens, out.partial or start + out.chars < len(rendered)
                )
            ids += out
        return ids

    def chat_frame(self) -> tuple[list[int], list[int]] | None:
        """``(lead, tail)`` when the chat template renders a conversation as ``lead``, then one piece per
        message that does not depend on the other messages, then ``tail`` -- as LLaDA's template does
        (lead: BOS; tail: the assistant header). A message's piece is then its own rendering without
        lead and tail. None when the template does not (or cannot tell): checked once, on probe
        conversations rendered with the generation prompt."""
        if self._frame is _UNSET:
            self._frame = self._find_frame()
        frame: tuple[list[int], list[int]] | None = self._frame
        return frame

    def _find_frame(self) -> tuple[list[int], list[int]] | None:
        x, y = {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}
        try:
            rx, ry, rxy, rxyx = (self.apply_chat_template(c, bounded=False) for c in ([x], [y], [x, y], [x, y, x]))
        except (TokenizerError, ValueError):  # e.g. a template that refuses a conversation opening with "assistant"
            return None
        nx, ny = len(rxyx) - len(rxy), len(rxy) - len(rx)
        if nx <= 0 or ny <= 0:
            return None
        for start in range(len(rx) - nx + 1):  # the shortest lead that explains all four renderings
            lead, bx, tail = rx[:start], rx[start : start + nx], rx[start + nx :]
            by = rxy[start + nx : start + nx + ny]
            if rxy == lead + bx + by + tail and rxyx == lead + bx + by + bx + tail and ry == lead + by + tail:
                return lead, tail
        return None


def _window_of(config_json: Path) -> int | None:
    """``max_sequence_length`` of a model's config.json; None when absent or unreadable (loading reports that)."""
    try:
        value = json.loads(config_json.read_text(encoding="utf-8")).get("max_sequence_length")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- the chat-template sandbox ----------------------------------------------------------------------
# A chat template comes with a checkpoint: it is code from someone else. jinja2's immutable sandbox
# blocks attribute tricks and mutation; these limits bound what it leaves open: time and memory.

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
