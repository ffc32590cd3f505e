"""Schema-exact structured output: the JSON skeleton of a schema is fixed text, the model writes the values.

``fill_schema(llm, prompt, schema)`` writes the JSON text of the schema (keys, braces, brackets, quotes and
commas, in the ``json.dumps`` default style) after ``prompt + "\\n"``, left to right; the model writes only
the values, with ``LLaDA.infill``:

- **strings**: ``"[MASK:auto]"`` -- the model picks the length (up to ``max_string_tokens``), and
  the span may only hold tokens that cannot end or escape a JSON string (no ``"``, ``\\``, control
  characters, special tokens); then cut to ``maxLength`` / padded to ``minLength``;
- **integers / numbers**: ``[MASK:auto]`` restricted to digit tokens (and ``.`` for numbers); the value
  is then moved to the nearest one that satisfies ``minimum`` / ``maximum`` / ``exclusiveMinimum`` /
  ``exclusiveMaximum`` / ``multipleOf`` (an exclusive float bound gets the shortest decimal strictly
  inside, however many digits that takes);
- **booleans, enums, constants**: the model chooses among the allowed JSON values by likelihood
  (``LLaDA.choose``), with the text around as context;
- **objects**: each run of consecutive scalar fields is one ``infill`` call (at most
  ``infill.MAX_AUTO_SPANS`` values each; fields not written yet stand as placeholders: ``""``, a valid
  number, the first choice), nested objects and lists are filled where they stand;
- **lists**: item by item, each written after the items before it with the list closed behind it, up to
  ``maxItems`` (``max_items`` when the schema has no bound); past ``minItems`` the list ends at the first
  item equal to an earlier one (the model has run out of new things to write). The cost is proportional
  to the items written: a list of lists of objects is a bounded number of small ``infill`` calls.
  Likelihood does not decide the length: on the bundled model every extra item lowered the text's
  likelihood by tens of nats, even items copied from the prompt, so it always chose ``[]``.

Every property is written (optional ones too; ``Optional[X]`` is written as an ``X``). A schema no value
can satisfy (``minimum`` above ``maximum``, ``exclusiveMinimum`` 5 and ``exclusiveMaximum`` 6 on an integer,
``minLength`` above ``maxLength``...) is a ``ValueError`` naming the field, the bounds and the rule, before
any model call. Every output is validated against the schema before it is returned (the supported
keywords below; pydantic too for a pydantic model): an invalid one is a ``ValueError``, never returned.

Supported JSON-schema keywords: ``type`` (object, string, integer, number, boolean, array, null),
``properties``, ``required``, ``items``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` (the first non-null
branch is written; a branch that is only ``null`` gives ``null``), ``$ref`` into ``$defs`` /
``definitions``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` (numbers, or
draft-4 booleans), ``multipleOf``, ``minItems``, ``maxItems``, ``uniqueItems``, ``minLength``,
``maxLength`` and annotations (``title``, ``description``, ``default``...). ``pattern``, ``format``,
``allOf``, ``not``, ``patternProperties`` and free-form objects are refused with a ``ValueError`` naming
the keyword.

This module knows nothing about torch or LangChain; it uses only ``LLaDA.infill``,
``LLaDA.choose`` and the tokenizer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llada_sdk.api import LLaDA
    from llada_sdk.tokenizer import Tokenizer

__all__ = ["SchemaFill", "fill_schema", "fill_schema_result", "json_schema_of", "skeleton", "validate"]

_UNSUPPORTED = ("pattern", "format", "allOf", "not", "patternProperties", "if", "dependentSchemas")
_MASK_LITERAL = re.compile(r"\[MASK(?::[^\]]*)?\]")
_SLOT = "\ue010"  # marks where a value goes while the text is assembled (never in user text)


# ---------------------------------------------------------------------------------------------
# schema -> template tree


@dataclass
class _Value:
    """A value the model writes: ``kind`` is ``string``, ``integer`` or ``number``; ``bounds`` and
    ``fallback`` (a value that satisfies them) for numbers."""

    kind: str
    schema: dict[str, Any]
    bounds: _Bounds | None = None
    fallback: int | float = 0


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
                "properties, required, items, enum, const, anyOf/oneOf, $ref, minimum/maximum, "
                "exclusiveMinimum/exclusiveMaximum, multipleOf, minItems/maxItems, uniqueItems, minLength/maxLength"
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
    if kind == "string":
        lo, hi = node.get("minLength"), node.get("maxLength")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            raise ValueError(
                f"`schema` at {path} has minLength ({lo}) > maxLength ({hi}): no string has a length n with "
                f"{lo} <= n <= {hi}"
            )
        return _Value("string", dict(node))
    if kind in ("integer", "number"):
        bounds = _bounds_of(node, str(kind), path)
        anchor: int | float = 0
        if bounds.lo is not None:
            anchor = bounds.lo
        elif bounds.hi is not None:
            anchor = bounds.hi
        if kind == "integer":
            anchor = math.floor(anchor)
        fallback = _pick(bounds, anchor)
        if fallback is None:
            raise ValueError(
                f"`schema` at {path} has an empty range: no {kind} x with {bounds.rules()} ({bounds.keywords()})"
            )
        return _Value(str(kind), dict(node), bounds, fallback)
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
    """The number the model wrote in ``fill``, moved to the nearest value its bounds allow."""
    digits = "".join(c for c in fill if c.isdigit() or c == ".")
    if node.kind == "integer":
        value: int | float = int(digits.replace(".", "") or "0")
    else:
        head, _, tail = digits.partition(".")
        tail = tail.replace(".", "")
        text = (head or "0") + ("." + tail if tail else "")
        value = float(text) if "." in text else int(text)
    assert node.bounds is not None
    picked = _pick(node.bounds, value)
    return node.fallback if picked is None else picked


def _number(schema: Mapping[str, Any], key: str, path: str) -> float | None:
    value = schema.get(key)
    if value is None or (isinstance(value, bool) and key.startswith("exclusive")):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"`schema` at {path} has `{key}` {value!r}; expected a finite number")
    return value


@dataclass(frozen=True)
class _Bounds:
    """The numeric constraints of a slot: ``lo`` / ``hi`` (None: unbounded), exclusive or not, ``multiple``."""

    kind: str
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    multiple: float | None = None

    def violation(self, x: Any) -> str | None:
        """The rule ``x`` breaks (``"exclusiveMinimum 5"``), or None."""
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return f"type {self.kind}"
        if self.kind == "integer" and not (isinstance(x, int) or x.is_integer()):
            return "type integer"
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return f"{'exclusiveMinimum' if self.lo_open else 'minimum'} {self.lo}"
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            return f"{'exclusiveMaximum' if self.hi_open else 'maximum'} {self.hi}"
        if self.multiple is not None and not _is_multiple(x, self.multiple):
            return f"multipleOf {self.multiple}"
        return None

    def rules(self) -> str:
        out = []
        if self.lo is not None:
            out.append(f"x {'>' if self.lo_open else '>='} {self.lo}")
        if self.hi is not None:
            out.append(f"x {'<' if self.hi_open else '<='} {self.hi}")
        if self.multiple is not None:
            out.append(f"x a multiple of {self.multiple}")
        return " and ".join(out)

    def keywords(self) -> str:
        out = []
        if self.lo is not None:
            out.append(f"{'exclusiveMinimum' if self.lo_open else 'minimum'} {self.lo}")
        if self.hi is not None:
            out.append(f"{'exclusiveMaximum' if self.hi_open else 'maximum'} {self.hi}")
        if self.multiple is not None:
            out.append(f"multipleOf {self.multiple}")
        return ", ".join(out)


def _bounds_of(schema: Mapping[str, Any], kind: str, path: str) -> _Bounds:
    lo, hi = _number(schema, "minimum", path), _number(schema, "maximum", path)
    lo_open = hi_open = False
    xlo, xhi = _number(schema, "exclusiveMinimum", path), _number(schema, "exclusiveMaximum", path)
    if schema.get("exclusiveMinimum") is True and lo is not None:  # draft 4: a flag on `minimum`
        lo_open = True
    if schema.get("exclusiveMaximum") is True and hi is not None:
        hi_open = True
    if xlo is not None and (lo is None or xlo >= lo):
        lo, lo_open = xlo, True
    if xhi is not None and (hi is None or xhi <= hi):
        hi, hi_open = xhi, True
    multiple = _number(schema, "multipleOf", path)
    if multiple is not None and multiple <= 0:
        raise ValueError(f"`schema` at {path} has `multipleOf` {multiple!r}; expected a number > 0")
    return _Bounds(kind, lo, lo_open, hi, hi_open, multiple)


def _is_multiple(x: int | float, m: int | float) -> bool:
    """JSON-schema's rule on the numbers as written: 0.3 is a multiple of 0.1 (``0.3 / 0.1`` is not a
    whole float, so python-jsonschema says no; ``_pick`` prefers values that also pass that test)."""
    if isinstance(m, int) and isinstance(x, int):
        return x % m == 0
    return _decimal(x) % _decimal(m) == 0


def _whole_quotient(x: int | float, m: int | float) -> bool:
    try:
        q = x / m
    except OverflowError:
        return False
    return math.isfinite(q) and q == int(q)


def _decimal(x: int | float) -> Decimal:
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _above(a: float, b: _Bounds, up: bool) -> float | None:
    """The shortest decimal strictly beyond ``a`` (above when ``up``, else below) that satisfies ``b``:
    0.50000001 for ``exclusiveMinimum`` 0.5 with ``exclusiveMaximum`` 0.5000001; the next float at worst."""
    for digits in range(18):
        q = Decimal(10) ** -digits
        whole = (_decimal(a) / q).to_integral_value(rounding=ROUND_FLOOR if up else ROUND_CEILING)
        x = float((whole + (1 if up else -1)) * q)
        if b.violation(x) is None:
            return x
    x = math.nextafter(a, math.inf if up else -math.inf)
    return x if b.violation(x) is None else None


_MULTIPLE_TRIES = 100_000  # multiples tried around a target (an integer slot skips non-integral ones)
_STRICT_TRIES = 64  # further multiples tried for one whose float quotient is whole too (every validator agrees)


def _pick(b: _Bounds, target: int | float) -> int | float | None:
    """The value nearest ``target`` (about) that satisfies ``b``; None when there is none."""
    if b.violation(target) is None:
        return target
    if b.multiple is None:
        if b.kind == "integer":
            lo = None if b.lo is None else math.floor(Fraction(b.lo)) + 1 if b.lo_open else math.ceil(Fraction(b.lo))
            hi = None if b.hi is None else math.ceil(Fraction(b.hi)) - 1 if b.hi_open else math.floor(Fraction(b.hi))
            x: int | float | None = int(target)
            if lo is not None and x is not None and x < lo:
                x = lo
            if hi is not None and x is not None and x > hi:
                x = hi
        elif b.lo is not None and (target <= b.lo if b.lo_open else target < b.lo):
            x = _above(b.lo, b, up=True) if b.lo_open else b.lo
        elif b.hi is not None and (target >= b.hi if b.hi_open else target > b.hi):
            x = _above(b.hi, b, up=False) if b.hi_open else b.hi
        else:
            x = None
        return x if x is not None and b.violation(x) is None else None
    m = _decimal(b.multiple)
    k0 = int((_decimal(target) / m).to_integral_value(rounding=ROUND_HALF_EVEN))
    k_lo = None if b.lo is None else int((_decimal(b.lo) / m).to_integral_value(rounding=ROUND_FLOOR))
    k_hi = None if b.hi is None else int((_decimal(b.hi) / m).to_integral_value(rounding=ROUND_CEILING))
    if k_lo is not None:
        k0 = max(k0, k_lo)
    if k_hi is not None:
        k0 = min(k0, k_hi)
    first: int | float | None = None
    for step in range(_MULTIPLE_TRIES):
        ks = [k0 + step, k0 - step] if step else [k0]
        ks = [k for k in ks if (k_lo is None or k >= k_lo) and (k_hi is None or k <= k_hi)]
        if not ks or (first is not None and step > _STRICT_TRIES):
            break
        for k in ks:
            exact = k * m
            if b.kind == "integer":
                if exact != exact.to_integral_value():
                    continue
                value: int | float = int(exact)
            else:
                value = float(exact)
            if b.violation(value) is None:
                if _whole_quotient(value, b.multiple):
                    return value
                first = value if first is None else first
    return first


# ---------------------------------------------------------------------------------------------
# validation


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _breaks(value: Any, schema: Any, root: Mapping[str, Any], path: str) -> tuple[str, str] | None:
    """``(where, rule)`` of the first rule of ``schema`` (the supported keywords) that ``value`` breaks."""
    if not isinstance(schema, Mapping):
        return None
    schema = _resolve(schema, root, ())
    if "const" in schema and not _same(value, schema["const"]):
        return path, f"const {schema['const']!r}"
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        return path, f"enum {schema['enum']!r}"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            ok = sum(_breaks(value, branch, root, path) is None for branch in schema[key])
            if ok == 0 or (key == "oneOf" and ok > 1):
                return path, f"{key} ({ok} branches match)"
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if kinds and not any(_TYPES.get(k, lambda v: False)(value) for k in kinds):
        return path, f"type {kind}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rule = _bounds_of(schema, "number", path).violation(value)
        if rule is not None:
            return path, rule
    if isinstance(value, str):
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            return path, f"minLength {schema['minLength']}"
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            return path, f"maxLength {schema['maxLength']}"
    if isinstance(value, list):
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            return path, f"minItems {schema['minItems']}"
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            return path, f"maxItems {schema['maxItems']}"
        if schema.get("uniqueItems") is True and any(_same(x, y) for i, x in enumerate(value) for y in value[:i]):
            return path, "uniqueItems"
        for i, item in enumerate(value):
            broken = _breaks(item, schema.get("items"), root, f"{path}[{i}]")
            if broken is not None:
                return broken
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                return path, f"required {key!r}"
        for key, item in value.items():
            if key in props:
                broken = _breaks(item, props[key], root, f"{path}.{key}")
                if broken is not None:
                    return broken
            elif schema.get("additionalProperties") is False:
                return f"{path}.{key}", "additionalProperties false"
    return None


def validate(data: Any, schema: Any) -> None:
    """Check ``data`` against ``schema`` (anything ``json_schema_of`` accepts) on the keywords
    ``fill_schema`` supports.

    Raises:
        ValueError: naming the first place that breaks a rule, the rule and the value.
    """
    root = json_schema_of(schema)
    broken = _breaks(data, root, root, "$")
    if broken is not None:
        where, rule = broken
        raise ValueError(f"the value at {where} breaks `{rule}` of the schema: {json.dumps(data, ensure_ascii=False)}")


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
    filler = _Filler(llm, sets, options, max_string_tokens, max_number_tokens, mc_num)
    data = filler.node(tree, "$", raw_head, after)
    text = _dumps(data)
    broken = _breaks(data, root, root, "$")
    if broken is not None:  # the values are built to satisfy the schema: this is a bug, never a result
        raise ValueError(
            f"fill_schema built a value that breaks `{broken[1]}` of the schema at {broken[0]}: {text} "
            "(please report it)"
        )
    value: Any = data
    if isinstance(schema, type):
        from pydantic import BaseModel, TypeAdapter

        value = (
            schema.model_validate(data) if issubclass(schema, BaseModel) else TypeAdapter(schema).validate_python(data)
        )
    return SchemaFill(text=text, data=data, value=value, fills=filler.fills)


def _leaf(node: Node) -> bool:
    return isinstance(node, (_Value, _Choice))


def _sep(i: int, key: str) -> str:
    return ("" if i == 0 else ", ") + _dumps(key) + ": "


def _placeholder(node: Node) -> str:
    """What a value not written yet stands as on the canvas: context only, never decoded."""
    if isinstance(node, _Value):
        return '""' if node.kind == "string" else _dumps(node.fallback)
    if isinstance(node, _Choice):
        return _dumps(node.options[0])
    if isinstance(node, _Object):
        return "{" + "".join(_sep(i, k) + _placeholder(c) for i, (k, c) in enumerate(node.fields)) + "}"
    return "[" + ", ".join(_placeholder(node.item) for _ in range(node.min_items)) + "]"


class _Filler:
    """Writes a template tree left to right (module docstring); ``fills`` collects the raw slot fills."""

    def __init__(
        self, llm: LLaDA, sets: dict[str, frozenset[int]], options: Any, max_string: int, max_number: int, mc_num: int
    ) -> None:
        from llada_sdk.text.infill import MAX_AUTO_SPANS

        self.llm, self.sets, self.options, self.mc_num = llm, sets, options, mc_num
        self.max_tokens = {"string": max_string, "integer": max_number, "number": max_number}
        self.max_values = MAX_AUTO_SPANS  # values per infill call: the [MASK:auto] search's limit
        self.fills: list[str] = []

    def node(self, node: Node, path: str, left: str, right: str) -> Any:
        """The value of ``node``, written between the raw texts ``left`` and ``right``."""
        if isinstance(node, _Object):
            return self.object(node, path, left, right)
        if isinstance(node, _Array):
            return self.array(node, path, left, right)
        return self.run([node], [""], left, right)[0]

    def object(self, node: _Object, path: str, left: str, right: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        text = "{"
        fields = node.fields
        i = 0
        while i < len(fields):
            key, child = fields[i]
            if not _leaf(child):
                rest = "".join(_sep(t, k) + _placeholder(c) for t, (k, c) in enumerate(fields) if t > i) + "}"
                out[key] = self.node(child, f"{path}.{key}", left + text + _sep(i, key), rest + right)
                text += _sep(i, key) + _dumps(out[key])
                i += 1
                continue
            j, n_values = i, 0  # a run of consecutive scalar fields, at most `max_values` of them written
            while j < len(fields) and _leaf(fields[j][1]):
                if isinstance(fields[j][1], _Value):
                    if n_values == self.max_values:
                        break
                    n_values += 1
                j += 1
            rest = "".join(_sep(t, k) + _placeholder(c) for t, (k, c) in enumerate(fields) if t >= j) + "}"
            run = fields[i:j]
            values = self.run(
                [c for _, c in run], [_sep(i + t, k) for t, (k, _) in enumerate(run)], left + text, rest + right
            )
            for (k, _), v in zip(run, values):
                out[k] = v
                text += _sep(len(out) - 1, k) + _dumps(v)
            i = j
        return out

    def run(self, leaves: Sequence[Node], seps: list[str], left: str, right: str) -> list[Any]:
        """Scalar values written together (one ``infill`` call), then the choices among them in order."""
        values: list[Any] = [n.options[0] if isinstance(n, _Choice) else None for n in leaves]
        slots = [(k, n) for k, n in enumerate(leaves) if isinstance(n, _Value)]
        if slots:
            pieces = []
            for k, n in enumerate(leaves):
                pieces.append(_escape(seps[k]))
                if isinstance(n, _Value):
                    # after ": " a number span owns the space (infill: whitespace before a span belongs to it)
                    pieces.append('"[MASK:auto]"' if n.kind == "string" else "[MASK:auto]")
                else:
                    pieces.append(_escape(_dumps(values[k])))
            res = self.llm.infill(
                _escape(left) + "".join(pieces) + _escape(right),
                allowed_tokens=[self.sets[n.kind] for _, n in slots],
                options=self.options,
                max_auto_length=max(self.max_tokens[n.kind] for _, n in slots),
            )
            for (k, n), fill in zip(slots, res.fills):
                values[k] = _string_value(fill, n.schema) if n.kind == "string" else _number_value(fill, n)
                self.fills.append(fill)
        for k, n in enumerate(leaves):
            if isinstance(n, _Choice) and len(n.options) > 1:
                texts = []
                for option in n.options:
                    middle = "".join(seps[t] + _dumps(option if t == k else values[t]) for t in range(len(leaves)))
                    texts.append(left + middle + right)
                values[k] = n.options[self.decide(texts)]
        return values

    def array(self, node: _Array, path: str, left: str, right: str) -> list[Any]:
        """Items one at a time, each with the list closed behind it; past ``min_items`` the list ends at
        the cap or at an item equal to an earlier one (its fills are dropped)."""
        items: list[Any] = []
        for i in range(node.max_items):
            head = left + "[" + "".join(_dumps(v) + ", " for v in items)
            mark = len(self.fills)
            value = self.node(node.item, f"{path}[{i}]", head, "]" + right)
            if i >= node.min_items and any(_same(value, v) for v in items):
                del self.fills[mark:]
                break
            items.append(value)
        return items

    def decide(self, alternatives: list[str]) -> int:
        """The most likely of ``alternatives`` (full texts that differ in one value) by ``LLaDA.choose``."""
        common = len(_common_prefix(alternatives))
        # back up to a token-friendly boundary: the last space or punctuation before the difference
        cut = max(alternatives[0].rfind(c, 0, common) for c in ' "[{,:') + 1 if common else 0
        choice = self.llm.choose(
            alternatives[0][:cut], [a[cut:] for a in alternatives], mc_num=self.mc_num, batch_size=self.mc_num
        )
        return int(choice.index)


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
        mc_num: Monte Carlo samples per candidate when choosing a boolean/enum value.
        options: ``GenerationOptions`` (or a dict) for the decoding of the slots.

    Returns:
        An instance of ``schema`` for a pydantic model class (validated), otherwise the parsed dict.

    Raises:
        TypeError: ``prompt`` is not a string or ``schema`` is not a schema.
        ValueError: the schema uses an unsupported keyword (named in the message), is recursive, or
            allows no value somewhere (an empty range: the field, the bounds and the rule are named).
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
