"""Schema-exact structured output: the JSON skeleton of a schema is fixed text, the model writes the values.

``fill_schema(llm, prompt, schema)`` builds the canvas ``prompt + "\\n" + skeleton``, where the skeleton
is the JSON text of the schema (keys, braces, brackets, quotes and commas, in the ``json.dumps``
default style) with a masked span in place of every value, and decodes it with ``LLaDA.infill``:

- **strings**: ``"[MASK:auto]"`` -- the model picks the length (up to ``max_string_tokens``), and
  the span may only hold tokens that cannot end or escape a JSON string (no ``"``, ``\\``, control
  characters, special tokens);
- **integers / numbers**: ``[MASK:auto]`` restricted to digit tokens (and ``.`` for numbers);
  the value is then clamped to ``minimum`` / ``maximum``;
- **booleans, enums, constants**: the model chooses among the allowed JSON values by likelihood
  (``LLaDA.choose``), with the rest of the text as right context;
- **nested objects**: their skeleton is nested text; **lists**: ``maxItems`` items are written
  (``max_items`` when the schema has no bound), then the model chooses how many to keep
  (between ``minItems`` and that bound) by likelihood.

Every property is written (optional ones too; ``Optional[X]`` is written as an ``X``). So the
output always parses and validates, whatever the model writes: the JSON text is rebuilt from the
decoded values, each of which satisfies its sub-schema by construction.

Supported JSON-schema keywords: ``type`` (object, string, integer, number, boolean, array, null),
``properties``, ``required``, ``items``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` (the first non-null
branch is written; a branch that is only ``null`` gives ``null``), ``$ref`` into ``$defs`` /
``definitions``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``minItems``,
``maxItems``, ``minLength``, ``maxLength`` and annotations (``title``, ``description``, ``default``...).
``pattern``, ``format``, ``allOf``, ``not``, ``patternProperties`` and free-form objects are refused
with a ``ValueError`` naming the keyword.

This module knows nothing about torch or LangChain; it uses only ``LLaDA.infill``,
``LLaDA.choose`` and the tokenizer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llada_sdk.api import LLaDA
    from llada_sdk.tokenizer import Tokenizer

__all__ = ["SchemaFill", "fill_schema", "fill_schema_result", "json_schema_of", "skeleton"]

_UNSUPPORTED = ("pattern", "format", "allOf", "not", "patternProperties", "if", "dependentSchemas")
_MASK_LITERAL = re.compile(r"\[MASK(?::[^\]]*)?\]")
_SLOT = "\ue010"  # marks where a value goes while the text is assembled (never in user text)


# ---------------------------------------------------------------------------------------------
# schema -> template tree


@dataclass
class _Value:
    """A value the model writes: ``kind`` is ``string``, ``integer`` or ``number``."""

    kind: str
    schema: dict[str, Any]


@dataclass
class _Choice:
    """A value chosen among ``options`` (booleans, enums, constants, null)."""

    options: list[Any]


@dataclass
class _Object:
    fields: list[tuple[str, Any]]


@dataclass
class _Array:
    item: Any
    min_items: int
    max_items: int


Node = _Value | _Choice | _Object | _Array


def json_schema_of(schema: Any) -> dict[str, Any]:
    """The JSON schema of ``schema``: a pydantic model class, a TypedDict, a dataclass, an OpenAI
    tool dict (its ``parameters``) or a JSON-schema dict.

    Args:
        schema: what to turn into a JSON schema.

    Returns:
        The JSON schema (a dict).

    Raises:
        TypeError: ``schema`` is none of the accepted kinds.
    """
    if isinstance(schema, Mapping):
        if schema.get("type") == "function" and isinstance(schema.get("function"), Mapping):
            return dict(schema["function"].get("parameters") or {"type": "object", "properties": {}})
        if "parameters" in schema and "name" in schema and "properties" not in schema:
            return dict(schema["parameters"])
        return dict(schema)
    if isinstance(schema, type):
        from pydantic import BaseModel, TypeAdapter

        if issubclass(schema, BaseModel):
            return schema.model_json_schema()
        try:
            return TypeAdapter(schema).json_schema()
        except Exception as exc:  # pydantic raises several error types for unsupported classes
            raise TypeError(
                "`schema` must be a pydantic model, a TypedDict, a dataclass or a JSON-schema dict, "
                f"got {schema!r} (pydantic: {exc})"
            ) from exc
    raise TypeError(
        "`schema` must be a pydantic model, a TypedDict, a dataclass or a JSON-schema dict, "
        f"got {type(schema).__name__}: {schema!r}"
    )


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any], seen: tuple[str, ...]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    if ref in seen:
        raise ValueError(f"`schema` is recursive through {ref!r}: a skeleton needs a finite schema")
    parts = ref.removeprefix("#/").split("/")
    target: Any = root
    for p in parts:
        if not isinstance(target, Mapping) or p not in target:
            raise ValueError(f"`schema` has a $ref that does not resolve: {ref!r}")
        target = target[p]
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(merged, root, (*seen, ref))


def _build(node: Any, root: Mapping[str, Any], max_items: int, path: str, seen: tuple[str, ...] = ()) -> Node:
    if node is True or node == {}:
        raise ValueError(f"`schema` at {path} allows any value: give it a type")
    if not isinstance(node, Mapping):
        raise ValueError(f"`schema` at {path} must be a JSON-schema object, got {node!r}")
    ref = node.get("$ref")
    node = _resolve(node, root, seen)
    if isinstance(ref, str):
        seen = (*seen, ref)
    for key in _UNSUPPORTED:
        if key in node:
            raise ValueError(
                f"`schema` at {path} uses `{key}`, which fill_schema does not support; supported: type, "
                "properties, required, items, enum, const, anyOf/oneOf, $ref, minimum/maximum, minItems/maxItems, "
                "minLength/maxLength"
            )
    if "const" in node:
        return _Choice([node["const"]])
    if "enum" in node:
        if not node["enum"]:
            raise ValueError(f"`schema` at {path} has an empty `enum`")
        return _Choice(list(node["enum"]))
    for key in ("anyOf", "oneOf"):
        if key in node:
            branches = [b for b in node[key] if not (isinstance(b, Mapping) and b.get("type") == "null")]
            if not branches:
                return _Choice([None])
            return _build(branches[0], root, max_items, path, seen)
    kind = node.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        kind = non_null[0] if non_null else "null"
    if kind is None and "properties" in node:
        kind = "object"
    if kind == "object":
        props = node.get("properties")
        if not isinstance(props, Mapping) or (not props and node.get("additionalProperties") not in (None, False)):
            raise ValueError(
                f"`schema` at {path} is an object without `properties` (a free-form dict): fill_schema needs its keys"
            )
        return _Object([(k, _build(v, root, max_items, f"{path}.{k}", seen)) for k, v in props.items()])
    if kind == "array":
        lo = int(node.get("minItems", 0))
        hi = int(node.get("maxItems", max(lo, max_items)))
        if hi < lo:
            raise ValueError(f"`schema` at {path} has maxItems ({hi}) < minItems ({lo})")
        if "items" not in node or not isinstance(node["items"], Mapping):
            raise ValueError(f"`schema` at {path} is an array without an `items` schema")
        return _Array(_build(node["items"], root, max_items, f"{path}[]", seen), lo, hi)
    if kind == "boolean":
        return _Choice([True, False])
    if kind == "null":
        return _Choice([None])
    if kind in ("string", "integer", "number"):
        return _Value(str(kind), dict(node))
    raise ValueError(
        f"`schema` at {path} has `type` {node.get('type')!r}; expected one of object, array, string, "
        "integer, number, boolean, null"
    )


# ---------------------------------------------------------------------------------------------
# rendering


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _escape(text: str) -> str:
    """Literal text for ``infill``: ``[MASK…]`` written by a user stays text."""
    return _MASK_LITERAL.sub(lambda m: "\\" + m.group(0), text)


def _walk_render(node: Node, out: list[str], values: Any, counts: dict[int, int], emit: Any) -> None:
    """Render ``node`` into ``out``; ``emit(node, out)`` writes a value slot (skeleton or final value)."""
    if isinstance(node, _Object):
        out.append("{")
        for i, (key, child) in enumerate(node.fields):
            out.append(("" if i == 0 else ", ") + _dumps(key) + ": ")
            _walk_render(child, out, values, counts, emit)
        out.append("}")
    elif isinstance(node, _Array):
        out.append("[")
        for i in range(counts.get(id(node), node.max_items)):
            if i:
                out.append(", ")
            _walk_render(node.item, out, values, counts, emit)
        out.append("]")
    else:
        emit(node, out)


def skeleton(schema: Any, *, max_items: int = 3) -> str:
    """The skeleton text of ``schema`` as ``fill_schema`` puts it on the canvas (``[MASK:auto]`` in
    string and number slots, ``[CHOICE]`` where a boolean/enum is chosen after decoding).

    Args:
        schema: anything ``json_schema_of`` accepts.
        max_items: how many items a list without ``maxItems`` gets.

    Returns:
        The skeleton, e.g. ``{"name": "[MASK:auto]", "age": [MASK:auto]}``.
    """
    root = json_schema_of(schema)
    tree = _build(root, root, max_items, "$")
    out: list[str] = []

    def emit(node: Node, buf: list[str]) -> None:
        if isinstance(node, _Value):
            buf.append('"[MASK:auto]"' if node.kind == "string" else "[MASK:auto]")
        else:
            buf.append("[CHOICE]")

    _walk_render(tree, out, None, {}, emit)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# token sets

_TOKEN_SETS: dict[int, tuple[Any, dict[str, frozenset[int]]]] = {}


def _token_sets(tok: Tokenizer) -> dict[str, frozenset[int]]:
    """Token ids allowed in string, integer and number slots (computed once per tokenizer)."""
    cached = _TOKEN_SETS.get(id(tok))
    if cached is not None and cached[0] is tok:
        return cached[1]
    string, integer, number = set(), set(), set()
    for i in range(tok.vocab_size):
        if tok.is_special(i):
            continue
        piece = tok.decode([i], skip_special_tokens=False)
        if not piece:
            continue
        # a byte token of a multi-byte character decodes alone to U+FFFD; it cannot form `"` or `\`
        # with its neighbours, so it stays allowed (CJK names are written byte by byte)
        if not any(c in '"\\' or ord(c) < 32 or c == "\x7f" or c == _SLOT for c in piece):
            string.add(i)
        if "\ufffd" in piece:
            continue
        core = piece.strip(" ")
        if (core.isdigit() and core.isascii()) or (piece.strip(" ") == "" and "\n" not in piece):
            integer.add(i)
            number.add(i)
        elif core and all((c.isdigit() and c.isascii()) or c == "." for c in core):
            number.add(i)
    sets = {"string": frozenset(string), "integer": frozenset(integer), "number": frozenset(number)}
    for name, ids in sets.items():
        if not ids:
            raise ValueError(f"the tokenizer has no token usable in a {name} slot")
    _TOKEN_SETS[id(tok)] = (tok, sets)
    return sets


# ---------------------------------------------------------------------------------------------
# values


def _string_value(fill: str, schema: Mapping[str, Any]) -> str:
    text = "".join(c for c in fill if c not in '"\\' and ord(c) >= 32).strip()
    hi = schema.get("maxLength")
    if isinstance(hi, int):
        text = text[:hi].rstrip() if hi > 0 else ""
    lo = schema.get("minLength")
    if isinstance(lo, int) and len(text) < lo:
        text = text + "_" * (lo - len(text))  # the only way left to satisfy minLength
    return text


def _number_value(fill: str, node: _Value) -> int | float:
    digits = "".join(c for c in fill if c.isdigit() or c == ".")
    if node.kind == "integer":
        value: int | float = int(digits.replace(".", "") or "0")
    else:
        head, _, tail = digits.partition(".")
        tail = tail.replace(".", "")
        text = (head or "0") + ("." + tail if tail else "")
        value = float(text) if "." in text else int(text)
    s = node.schema
    lo, hi = s.get("minimum"), s.get("maximum")
    xlo, xhi = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
    step = 1 if node.kind == "integer" else 1e-6
    if isinstance(xlo, (int, float)) and not isinstance(xlo, bool):
        lo = max(lo, xlo + step) if isinstance(lo, (int, float)) else xlo + step
    if isinstance(xhi, (int, float)) and not isinstance(xhi, bool):
        hi = min(hi, xhi - step) if isinstance(hi, (int, float)) else xhi - step
    if isinstance(lo, (int, float)) and value < lo:
        value = math.ceil(lo) if node.kind == "integer" else lo
    if isinstance(hi, (int, float)) and value > hi:
        value = math.floor(hi) if node.kind == "integer" else hi
    return value


@dataclass
class SchemaFill:
    """What ``fill_schema_result`` returns.

    Attributes:
        text: the JSON text (always parses and validates against the schema).
        data: ``json.loads(text)``.
        value: ``data`` validated into the schema's class (a pydantic model instance) or ``data``.
        fills: the raw text the model wrote in each string/number slot, in order.
    """

    text: str
    data: Any
    value: Any
    fills: list[str] = field(default_factory=list)


def _check_int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"`{name}` must be an integer >= {lo}, got {value!r}")
    return value


def fill_schema_result(
    llm: LLaDA,
    prompt: str,
    schema: Any,
    *,
    max_string_tokens: int = 8,
    max_number_tokens: int = 6,
    max_items: int = 3,
    mc_num: int = 32,
    options: Any = None,
    before: str = "",
    after: str = "",
) -> SchemaFill:
    """``fill_schema`` with the JSON text and the raw slot fills (see ``fill_schema``).

    ``before`` and ``after`` are literal text around the skeleton on the canvas (a forced tool call
    puts ``<tool_call>{"name": ..., "arguments": `` before the arguments' skeleton and ``}</tool_call>``
    after it); ``text`` is the JSON alone.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"`prompt` must be a string, got {type(prompt).__name__}: {prompt!r}")
    max_string_tokens = _check_int(max_string_tokens, "max_string_tokens", 1)
    max_number_tokens = _check_int(max_number_tokens, "max_number_tokens", 1)
    max_items = _check_int(max_items, "max_items", 0)
    mc_num = _check_int(mc_num, "mc_num", 1)
    root = json_schema_of(schema)
    tree = _build(root, root, max_items, "$")
    sets = _token_sets(llm.require_tokenizer())
    for name, literal in (("before", before), ("after", after)):
        if not isinstance(literal, str):
            raise TypeError(f"`{name}` must be a string, got {type(literal).__name__}: {literal!r}")
    raw_head = (prompt.rstrip("\n") + "\n" if prompt.strip() else "") + before
    head, tail = _escape(raw_head), _escape(after)

    # phase 1: decode every string/number slot together; choices hold their first option meanwhile
    slots: list[_Value] = []
    allowed: list[frozenset[int]] = []

    def emit_skeleton(node: Node, buf: list[str]) -> None:
        if isinstance(node, _Choice):
            buf.append(_escape(_dumps(node.options[0])))
        elif isinstance(node, _Value):
            slots.append(node)
            allowed.append(sets[node.kind])
            # after ": " a number span owns the space (infill: whitespace before a span belongs to it)
            buf.append('"[MASK:auto]"' if node.kind == "string" else "[MASK:auto]")

    parts: list[str] = []
    _walk_render(tree, parts, None, {}, emit_skeleton)
    canvas = head + "".join(parts) + tail
    fills: list[str] = []
    if slots:
        longest = max(max_string_tokens if s.kind == "string" else max_number_tokens for s in slots)
        res = llm.infill(canvas, allowed_tokens=list(allowed), options=options, max_auto_length=longest)
        fills = list(res.fills)
    values: dict[int, Any] = {}
    it = iter(zip(slots, fills))

    def assign(node: Node, buf: list[str]) -> None:
        if isinstance(node, _Value):
            slot, fill = next(it)
            values[id(slot)] = _string_value(fill, slot.schema) if slot.kind == "string" else _number_value(fill, slot)

    _walk_render(tree, [], None, {}, assign)

    # phase 2: choices and list lengths, in document order, each with the rest of the text as context
    chosen: dict[int, Any] = {}
    counts: dict[int, int] = {}

    def render(override: tuple[int, Any] | None = None) -> str:
        out: list[str] = []

        def emit(node: Node, buf: list[str]) -> None:
            if override is not None and id(node) == override[0]:
                buf.append(_SLOT)
            elif isinstance(node, _Value):
                buf.append(_dumps(values.get(id(node), "" if node.kind == "string" else 0)))
            elif isinstance(node, _Choice):
                buf.append(_dumps(chosen.get(id(node), node.options[0])))

        _walk_render(tree, out, None, counts, emit)
        return "".join(out)

    def decide(alternatives: list[str]) -> int:
        if len(alternatives) == 1:
            return 0
        common = len(_common_prefix(alternatives))
        # back up to a token-friendly boundary: the last space or punctuation before the difference
        cut = max(alternatives[0].rfind(c, 0, common) for c in ' "[{,:') + 1 if common else 0
        prefix = raw_head + alternatives[0][:cut]
        choice = llm.choose(prefix, [a[cut:] for a in alternatives], mc_num=mc_num, batch_size=mc_num)
        return int(choice.index)

    def phase2(node: Node) -> None:
        if isinstance(node, _Object):
            for _, child in node.fields:
                phase2(child)
        elif isinstance(node, _Array):
            if node.max_items > node.min_items:
                options_k = list(range(node.min_items, node.max_items + 1))
                texts = []
                for k in options_k:
                    counts[id(node)] = k
                    texts.append(render())
                counts[id(node)] = options_k[decide(texts)]
            if counts.get(id(node), node.max_items) > 0:
                phase2(node.item)
        elif isinstance(node, _Choice) and len(node.options) > 1:
            texts = []
            for opt in node.options:
                chosen[id(node)] = opt
                texts.append(render())
            chosen[id(node)] = node.options[decide(texts)]

    phase2(tree)
    text = render()
    data = json.loads(text)
    value: Any = data
    if isinstance(schema, type):
        from pydantic import BaseModel, TypeAdapter

        value = (
            schema.model_validate(data) if issubclass(schema, BaseModel) else TypeAdapter(schema).validate_python(data)
        )
    return SchemaFill(text=text, data=data, value=value, fills=fills)


def _common_prefix(texts: Sequence[str]) -> str:
    first, last = min(texts), max(texts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def fill_schema(
    llm: LLaDA,
    prompt: str,
    schema: Any,
    *,
    max_string_tokens: int = 8,
    max_number_tokens: int = 6,
    max_items: int = 3,
    mc_num: int = 32,
    options: Any = None,
) -> Any:
    """Fill ``schema`` from ``prompt``: the JSON skeleton is fixed, the model writes only the values.

    The canvas is ``prompt``, a newline and the skeleton (module docstring). The result always
    parses and validates against the schema, whatever the model writes.

    Args:
        llm: the model (``LLaDA``).
        prompt: the text the values come from (e.g. a sentence to extract facts from).
        schema: a pydantic model class, a TypedDict, a dataclass, a JSON-schema dict or an OpenAI
            tool dict.
        max_string_tokens: longest string value in tokens (the model picks each length up to it).
        max_number_tokens: longest number in tokens.
        max_items: most items of a list whose schema has no ``maxItems``.
        mc_num: Monte Carlo samples per candidate when choosing a boolean/enum value or a list length.
        options: ``GenerationOptions`` (or a dict) for the decoding of the slots.

    Returns:
        An instance of ``schema`` for a pydantic model class (validated), otherwise the parsed dict.

    Raises:
        TypeError: ``prompt`` is not a string or ``schema`` is not a schema.
        ValueError: the schema uses an unsupported keyword (named in the message) or is recursive.
    """
    return fill_schema_result(
        llm,
        prompt,
        schema,
        max_string_tokens=max_string_tokens,
        max_number_tokens=max_number_tokens,
        max_items=max_items,
        mc_num=mc_num,
        options=options,
    ).value
