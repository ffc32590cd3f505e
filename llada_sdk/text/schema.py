"""JSON schemas as templates: a schema (pydantic model, TypedDict, dict) becomes a tree of fixed text and
value slots (``skeleton``), rendered into the JSON text an infill canvas holds; ``validate`` checks a
value against the supported JSON-schema subset (every output is checked before it is returned)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llada_sdk.text.schema_values import _Bounds, _bounds_of, _pick

if TYPE_CHECKING:
    pass

__all__ = ["Node", "json_schema_of", "skeleton", "validate"]


_UNSUPPORTED = ("pattern", "format", "allOf", "not", "patternProperties", "if", "dependentSchemas")
_SLOT = "\ue010"  # marks where a value goes while the text is assembled (never in user text)


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


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


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
