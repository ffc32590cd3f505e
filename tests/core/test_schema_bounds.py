"""Schema-exact numbers: exclusive and tight bounds hold, empty ranges are refused before any model call,
and every output is validated before it is returned."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from pydantic import BaseModel, Field, TypeAdapter, create_model

from llada_sdk.text import structured
from llada_sdk.text.structured import fill_schema, validate
from tests.core.test_structured import RandomLLM


def _number_schema(kind: str, **bounds: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"x": {"type": kind, **bounds}}, "required": ["x"]}


def test_an_exclusive_float_range_narrower_than_the_slot_digits_is_honoured() -> None:
    class Tight(BaseModel):
        x: float = Field(gt=0.5, lt=0.5000001)

    for seed in range(20):  # whatever digits the model writes
        value = fill_schema(RandomLLM(seed), "x", Tight, max_number_tokens=2).x  # type: ignore[arg-type]
        assert 0.5 < value < 0.5000001
    # one float inside: that one; none inside: refused
    one = math.nextafter(0.5, 1)
    data = fill_schema(
        RandomLLM(0), "x", _number_schema("number", exclusiveMinimum=0.5, exclusiveMaximum=math.nextafter(one, 1))
    )  # type: ignore[arg-type]
    assert data == {"x": one}
    with pytest.raises(
        ValueError, match=r"`schema` at \$\.x has an empty range: no number x with x > 0\.5 and x < 0\.5000000000000001"
    ):
        fill_schema(RandomLLM(0), "x", _number_schema("number", exclusiveMinimum=0.5, exclusiveMaximum=one))  # type: ignore[arg-type]


def test_exclusive_integer_bounds_move_to_the_next_integer() -> None:
    for seed in range(10):
        out = fill_schema(RandomLLM(seed), "x", _number_schema("integer", exclusiveMinimum=5, exclusiveMaximum=8))  # type: ignore[arg-type]
        assert out["x"] in (6, 7)
        out = fill_schema(RandomLLM(seed), "x", _number_schema("integer", exclusiveMinimum=5.5, maximum=6.9))  # type: ignore[arg-type]
        assert out["x"] == 6


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            create_model("GtLt", n=(int, Field(gt=5, lt=6))),
            r"`schema` at \$\.n has an empty range: no integer x with x > 5 and x < 6 \(exclusiveMinimum 5, exclusiveMaximum 6\)",
        ),
        (
            _number_schema("integer", minimum=10, maximum=2),
            r"`schema` at \$\.x has an empty range: no integer x with x >= 10 and x <= 2 \(minimum 10, maximum 2\)",
        ),
        (
            _number_schema("number", minimum=10, maximum=2),
            r"`schema` at \$\.x has an empty range: no number x with x >= 10 and x <= 2 \(minimum 10, maximum 2\)",
        ),
        (
            _number_schema("number", exclusiveMinimum=3, exclusiveMaximum=3),
            r"no number x with x > 3 and x < 3 \(exclusiveMinimum 3, exclusiveMaximum 3\)",
        ),
        (
            _number_schema("number", exclusiveMinimum=4, exclusiveMaximum=3),
            r"no number x with x > 4 and x < 3 \(exclusiveMinimum 4, exclusiveMaximum 3\)",
        ),
        (
            _number_schema("integer", minimum=1, maximum=6, multipleOf=7),
            r"no integer x with x >= 1 and x <= 6 and x a multiple of 7 \(minimum 1, maximum 6, multipleOf 7\)",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": _number_schema("integer", minimum=3, exclusiveMaximum=3)}
                },
            },
            r"`schema` at \$\.items\[\]\.x has an empty range: no integer x with x >= 3 and x < 3",
        ),
        (
            {"type": "object", "properties": {"s": {"type": "string", "minLength": 4, "maxLength": 2}}},
            r"`schema` at \$\.s has minLength \(4\) > maxLength \(2\)",
        ),
        (_number_schema("number", multipleOf=0), r"`schema` at \$\.x has `multipleOf` 0; expected a number > 0"),
    ],
)
def test_empty_ranges_are_refused_naming_the_field_the_bounds_and_the_rule(schema: Any, message: str) -> None:
    fake = RandomLLM(0)
    with pytest.raises(ValueError, match=message):
        fill_schema(fake, "x", schema)  # type: ignore[arg-type]
    assert fake.canvases == []  # before any model call


def test_an_output_that_breaks_the_schema_is_an_error_never_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(structured, "_number_value", lambda fill, node: 99)  # a writer bug
    with pytest.raises(ValueError, match=r"breaks `maximum 10` of the schema at \$\.x: \{\"x\": 99\}"):
        fill_schema(RandomLLM(0), "x", _number_schema("integer", minimum=0, maximum=10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"the value at \$\.x breaks `exclusiveMinimum 0\.5`"):
        validate({"x": 0.5}, _number_schema("number", exclusiveMinimum=0.5))
    validate({"x": 0.3}, _number_schema("number", multipleOf=0.1))  # multiples as written, not as floats


def _random_bound_schema(rng: random.Random) -> dict[str, Any]:
    """Tight and exclusive bounds, sometimes empty: ints and floats, gt/ge/lt/le, multipleOf."""
    kind = rng.choice(["integer", "number"])
    base = rng.choice([0, 0.5, 5, -3, 1e-9, 1234.5678, rng.uniform(-50, 50)])
    width = rng.choice([0, 1e-12, 1e-7, 0.3, 1, 2, 10, 1e6])
    if kind == "integer" and rng.random() < 0.5:
        base = round(base)
    schema: dict[str, Any] = {"type": kind}
    lo_key = rng.choice(["minimum", "exclusiveMinimum", None])
    hi_key = rng.choice(["maximum", "exclusiveMaximum", None])
    if lo_key:
        schema[lo_key] = base
    if hi_key:
        schema[hi_key] = base + width if rng.random() < 0.9 else base - width
    if rng.random() < 0.3:
        schema["multipleOf"] = rng.choice([1, 2, 3, 0.5, 0.25, 0.1, 0.01] if kind == "number" else [1, 2, 3, 7])
    return schema


def _no_value_fits(schema: dict[str, Any]) -> bool:
    """Brute force: no candidate value near the bounds satisfies them (so refusing was right)."""
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    m = schema.get("multipleOf")
    if lo is None or hi is None:
        return False
    candidates: list[float] = [lo, hi, math.nextafter(lo, math.inf), math.nextafter(hi, -math.inf), (lo + hi) / 2]
    # every multiple (or integer) between the bounds when there are few; else those near each bound (an
    # inverted range of a million steps holds no value anyway, and enumerating it took 13 s)
    for step in [s for s in (m, 1 if schema["type"] == "integer" else None) if s is not None]:
        a, b = math.floor(min(lo, hi) / step), math.ceil(max(lo, hi) / step)
        ks = range(a - 2, b + 3) if b - a <= 1000 else [*range(a - 2, a + 3), *range(b - 2, b + 3)]
        candidates += [k * step for k in ks]
    fits = [c for c in candidates if structured._breaks(c, schema, schema, "$") is None]
    return not fits


@pytest.mark.parametrize("seed", range(200))
def test_random_tight_and_exclusive_bounds_always_validate(seed: int) -> None:
    rng = random.Random(f"bounds-{seed}")
    props = {f"x{i}": _random_bound_schema(rng) for i in range(rng.randint(1, 3))}
    schema = {"type": "object", "properties": props, "required": list(props)}
    try:
        out = fill_schema(RandomLLM(seed), "x", schema, max_number_tokens=rng.choice([1, 2, 6]))  # type: ignore[arg-type]
    except ValueError as exc:
        bad = [k for k, s in props.items() if f"$.{k} " in str(exc)]
        assert bad and _no_value_fits(props[bad[0]]), (exc, props)
        return
    validate(out, schema)
    names = {
        "minimum": "ge",
        "maximum": "le",
        "exclusiveMinimum": "gt",
        "exclusiveMaximum": "lt",
        "multipleOf": "multiple_of",
    }
    for key, sub in props.items():  # an independent check per bound: pydantic's own rules
        if sub["type"] == "integer":
            TypeAdapter(int).validate_python(out[key], strict=True)
        constraints = {names[k]: v for k, v in sub.items() if k in names}
        create_model("M", v=(float, Field(**constraints))).model_validate({"v": out[key]})
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(out, schema)  # and python-jsonschema's (strict float multipleOf quotients)
