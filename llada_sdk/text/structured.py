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

This module knows nothing about torch or LangChain; it uses only the model's ``infill``, ``choose`` and
tokenizer (a ``TextModel``: ``LLaDA`` or anything with those calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llada_sdk.text.canvas import escape_spans
from llada_sdk.text.schema import (
    _SLOT,
    Node,
    _Array,
    _breaks,
    _build,
    _Choice,
    _dumps,
    _Object,
    _same,
    _Value,
    json_schema_of,
    skeleton,
    validate,
)
from llada_sdk.text.schema_values import _number_value, _string_value
from llada_sdk.text.validate import check_text

if TYPE_CHECKING:
    from llada_sdk.text.parts import TextModel
    from llada_sdk.tokenizer import Tokenizer

__all__ = ["SchemaFill", "fill_schema", "fill_schema_result", "json_schema_of", "skeleton", "validate"]


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
    llm: TextModel,
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
    check_text(prompt, "prompt")
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
        self,
        llm: TextModel,
        sets: dict[str, frozenset[int]],
        options: Any,
        max_string: int,
        max_number: int,
        mc_num: int,
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
                pieces.append(escape_spans(seps[k]))
                if isinstance(n, _Value):
                    # after ": " a number span owns the space (infill: whitespace before a span belongs to it)
                    pieces.append('"[MASK:auto]"' if n.kind == "string" else "[MASK:auto]")
                else:
                    pieces.append(escape_spans(_dumps(values[k])))
            res = self.llm.infill(
                escape_spans(left) + "".join(pieces) + escape_spans(right),
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
    llm: TextModel,
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
        llm: the model (a ``TextModel``, e.g. ``LLaDA``).
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
