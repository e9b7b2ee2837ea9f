"""The functions an expression may call, each with its arity and its guards."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from calcfleet.errors import (
    ArithmeticDomainError,
    ExpressionSyntaxError,
    ResultOutOfRangeError,
)
from calcfleet.numbers import Number, check_integer_bits, checked_float
from calcfleet.settings import LimitSettings


@dataclasses.dataclass(frozen=True)
class Function:
    name: str
    min_args: int
    max_args: int
    implementation: Callable[..., Number]
    summary: str
    integers_only: bool = False

    def check_arity(self, count: int, column: int | None) -> None:
        if not self.min_args <= count <= self.max_args:
            expected = (
                str(self.min_args)
                if self.min_args == self.max_args
                else f"{self.min_args} to {self.max_args}"
            )
            if self.max_args == _ANY:
                expected = f"at least {self.min_args}"
            raise ExpressionSyntaxError(
                f"{self.name}() takes {expected} argument(s), not {count}", column
            )

    def apply(
        self, arguments: Sequence[Number], limits: LimitSettings, column: int | None
    ) -> Number:
        if self.integers_only and not all(isinstance(a, int) for a in arguments):
            raise ArithmeticDomainError(f"{self.name}() takes integers only", column)
        if self.name == "factorial":
            _check_factorial(arguments[0], limits.max_integer_bits, column)
        result: Number
        try:
            if self.name == "lcm":
                result = _bounded_lcm(arguments, limits.max_integer_bits)
            else:
                result = self.implementation(*arguments)
        except (ValueError, ZeroDivisionError, TypeError):
            shown = ", ".join(_short(a) for a in arguments)
            raise ArithmeticDomainError(
                f"{self.name}({shown}) is outside the domain of {self.name}", column
            ) from None
        except OverflowError:
            raise ResultOutOfRangeError(
                f"result of {self.name}() is too large", column
            ) from None
        if isinstance(result, float):
            return checked_float(result, f"{self.name}()", column)
        check_integer_bits(result, limits.max_integer_bits, column)
        return result


_ANY = 1_000


def _check_factorial(n: Number, max_bits: int, column: int | None) -> None:
    if isinstance(n, int) and n > 1:
        # log2(n!) = lgamma(n + 1) / ln 2, known before n! is computed.
        bits = math.lgamma(n + 1) / math.log(2)
        if bits > max_bits:
            raise ResultOutOfRangeError(
                f"factorial({n}) would have about {math.ceil(bits)} bits; "
                f"the limit is {max_bits}",
                column,
            )


def _short(value: Number) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, digits: int | None = None) -> Number:
    if digits is not None and not isinstance(digits, int):
        raise ValueError(digits)
    if digits is None:
        return round(x)
    # round(n, -d) builds 10**d first: with d past the number's own length the
    # answer is 0, and computing it would stall the server for nothing.
    if isinstance(x, int) and -digits > x.bit_length() * math.log10(2) + 1:
        return 0
    return round(x, digits)


def _bounded_lcm(numbers: Sequence[Number], max_bits: int) -> int:
    """math.lcm one argument at a time, stopping as soon as the limit is passed."""
    result = 1
    for number in numbers:
        result = math.lcm(result, int(number))
        if result.bit_length() > max_bits:
            raise OverflowError
    return result


def _sqrt(x: Number) -> float:
    return math.sqrt(x)


_ALL = [
    Function("abs", 1, 1, abs, "absolute value; an integer stays an integer"),
    Function("sqrt", 1, 1, _sqrt, "square root, a float"),
    Function("isqrt", 1, 1, math.isqrt, "integer square root", integers_only=True),
    Function("floor", 1, 1, math.floor, "largest integer not above x"),
    Function("ceil", 1, 1, math.ceil, "smallest integer not below x"),
    Function("round", 1, 2, _round, "round half to even; to an integer without digits"),
    Function("min", 1, _ANY, lambda *a: min(a), "smallest argument"),
    Function("max", 1, _ANY, lambda *a: max(a), "largest argument"),
    Function("log", 1, 2, _log, "natural logarithm, or to the given base"),
    Function("log2", 1, 1, math.log2, "base-2 logarithm"),
    Function("log10", 1, 1, math.log10, "base-10 logarithm"),
    Function("exp", 1, 1, math.exp, "e to the power x"),
    Function("sin", 1, 1, math.sin, "sine, x in radians"),
    Function("cos", 1, 1, math.cos, "cosine, x in radians"),
    Function("tan", 1, 1, math.tan, "tangent, x in radians"),
    Function("asin", 1, 1, math.asin, "arc sine, in radians"),
    Function("acos", 1, 1, math.acos, "arc cosine, in radians"),
    Function("atan", 1, 1, math.atan, "arc tangent, in radians"),
    Function("factorial", 1, 1, math.factorial, "n!", integers_only=True),
    Function("gcd", 1, _ANY, math.gcd, "greatest common divisor", integers_only=True),
    Function("lcm", 1, _ANY, math.lcm, "least common multiple", integers_only=True),
]

FUNCTIONS: dict[str, Function] = {function.name: function for function in _ALL}
