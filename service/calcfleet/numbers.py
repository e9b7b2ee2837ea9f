"""Guarded integer and float arithmetic, and the exact text of a result."""

from __future__ import annotations

import math
import re

from calcfleet.errors import (
    ArithmeticDomainError,
    ExpressionSyntaxError,
    ResultOutOfRangeError,
)

Number = int | float

# CPython refuses int <-> str conversions past 4,300 digits (CVE-2020-10735);
# longer results are cut into pieces under that size.
_SAFE_DIGITS = 4_000


def check_integer_bits(value: int, max_bits: int, column: int | None) -> None:
    if value.bit_length() > max_bits:
        raise ResultOutOfRangeError(
            f"integer result has {value.bit_length()} bits; the limit is {max_bits}",
            column,
        )


def checked_float(value: float, symbol: str, column: int | None) -> float:
    if not math.isfinite(value):
        raise ResultOutOfRangeError(
            f"result of {symbol!r} is not a finite float", column
        )
    return value


def product(a: Number, b: Number, max_bits: int, column: int | None) -> Number:
    """a * b, refusing an integer product over the limit before computing it."""
    # |a*b| has bit_length(a) + bit_length(b) bits, or one fewer.
    if isinstance(a, int) and isinstance(b, int) and a and b:
        bits = a.bit_length() + b.bit_length() - 1
        if bits > max_bits:
            _too_many_bits(bits, max_bits, column)
    return a * b


def power(base: Number, exponent: Number, max_bits: int, column: int | None) -> Number:
    """base ** exponent; an integer result is sized before it is computed."""
    if isinstance(base, int) and isinstance(exponent, int):
        if exponent < 0:
            if base == 0:
                raise ZeroDivisionError
            return float(base) ** exponent
        if abs(base) > 1 and exponent > max_bits:
            _too_many_bits(exponent, max_bits, column, at_least=True)
        if abs(base) > 1:
            bits = exponent * math.log2(abs(base))
            if bits > max_bits:
                _too_many_bits(math.ceil(bits), max_bits, column)
        return base**exponent
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    try:
        # math.pow refuses a negative base with a fractional exponent instead
        # of returning a complex number, as the ** operator would.
        return math.pow(base, exponent)
    except ValueError:
        raise ArithmeticDomainError(
            "a negative number to a fractional power is not a real number", column
        ) from None


def _too_many_bits(
    bits: int, max_bits: int, column: int | None, at_least: bool = False
) -> None:
    size = f"more than {bits}" if at_least else f"about {bits}"
    raise ResultOutOfRangeError(
        f"integer result would have {size} bits; the limit is {max_bits}", column
    )


def to_text(value: Number) -> str:
    """Exact decimal text of an integer; shortest round-trip text of a float."""
    if isinstance(value, float):
        return repr(value)
    if value < 0:
        return "-" + _decimal(-value)
    return _decimal(value)


def _decimal(value: int) -> str:
    digits = int(value.bit_length() * math.log10(2)) + 1
    if digits <= _SAFE_DIGITS:
        return str(value)
    half = digits // 2
    high, low = divmod(value, 10**half)
    return _decimal(high) + _decimal(low).zfill(half)


_OPERAND = re.compile(r"[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?")


def parse_operand(text: str) -> Number:
    """A number written as an expression literal would be, with an optional sign."""
    stripped = text.strip()
    if not _OPERAND.fullmatch(stripped) or "__" in stripped or "_." in stripped:
        raise ExpressionSyntaxError(f"{_shown(text)} is not a number")
    if any(mark in stripped for mark in ".eE"):
        value = float(stripped)
        if not math.isfinite(value):
            raise ResultOutOfRangeError(f"{_shown(text)} is too large for a float")
        return value
    try:
        return int(stripped)
    except ValueError:
        # int() refuses a misplaced underscore, and more than 4,300 digits
        # (CVE-2020-10735); the second is far past max_integer_bits anyway.
        if len(stripped) > _SAFE_DIGITS:
            raise ResultOutOfRangeError(
                f"operand has {len(stripped)} digits; too large an integer"
            ) from None
        raise ExpressionSyntaxError(f"{_shown(text)} is not a number") from None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 24 else repr(text[:21] + "...")
