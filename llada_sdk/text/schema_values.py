"""Values of schema slots: parsing what the model wrote, and the exact bounds of numbers (exclusive
bounds, ``multipleOf``, empty ranges refused by name)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llada_sdk.text.schema import _Value

    pass


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
