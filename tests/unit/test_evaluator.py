"""The evaluator's numeric semantics, its errors and its limits."""

from __future__ import annotations

import math
import sys

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calcfleet.errors import EvaluationError
from calcfleet.evaluator import evaluate, parse
from calcfleet.numbers import to_text
from calcfleet.settings import LimitSettings

LIMITS = LimitSettings()


def value_of(text: str, limits: LimitSettings = LIMITS) -> str:
    return to_text(evaluate(text, limits))


def error_of(text: str, limits: LimitSettings = LIMITS) -> EvaluationError:
    with pytest.raises(EvaluationError) as caught:
        evaluate(text, limits)
    return caught.value


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2**100 + 1", "1267650600228229401496703205377"),
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("-2**2", "-4"),
        ("(-2)**2", "4"),
        ("2**3**2", "512"),
        ("2**-1", "0.5"),
        ("7 / 2", "3.5"),
        ("6 / 3", "2.0"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("-7 % 2", "1"),
        ("7 % -2", "-1"),
        ("7.5 // 2", "3.0"),
        ("1 + 2.0", "3.0"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("1e16", "1e+16"),
        ("1_000_000", "1000000"),
        ("0x10 + 0b11", "19"),
        ("sqrt(16)", "4.0"),
        ("isqrt(17)", "4"),
        ("abs(-5)", "5"),
        ("floor(-2.5)", "-3"),
        ("ceil(2.1)", "3"),
        ("round(2.5)", "2"),
        ("round(2.675, 2)", "2.67"),
        ("min(3, 1, 2)", "1"),
        ("max(3, 1.5)", "3"),
        ("log(8, 2)", "3.0"),
        ("log10(1000)", "3.0"),
        ("exp(0)", "1.0"),
        ("cos(0)", "1.0"),
        ("factorial(20)", "2432902008176640000"),
        ("gcd(12, 18)", "6"),
        ("lcm(4, 6, 10)", "60"),
        ("min(7)", "7"),
        ("round(123456, -2)", "123500"),
        ("round(1, -10**7)", "0"),
        ("pi", "3.141592653589793"),
        ("e", "2.718281828459045"),
        ("--2", "2"),
        ("-+-2", "2"),
    ],
)
def test_expression_has_exact_value(expression: str, value: str) -> None:
    assert value_of(expression) == value


def test_integers_stay_exact_past_the_decimal_conversion_limit() -> None:
    # CPython refuses str() of an int past 4,300 digits; results are longer.
    text = value_of("2**20000")
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        assert text == str(2**20000)
    finally:
        sys.set_int_max_str_digits(limit)
    assert len(text) == 6021
    assert value_of("-(2**20000)") == "-" + text


@pytest.mark.parametrize(
    ("expression", "code", "message"),
    [
        ("1/0", "INVALID_ARGUMENT", "division by zero in '/' at column 2"),
        ("1 % 0", "INVALID_ARGUMENT", "division by zero in '%' at column 3"),
        ("0**-1", "INVALID_ARGUMENT", "division by zero in '**' at column 2"),
        ("sqrt(-1)", "INVALID_ARGUMENT", "sqrt(-1) is outside the domain of sqrt"),
        ("log(0)", "INVALID_ARGUMENT", "log(0) is outside the domain of log"),
        ("(-8)**0.5", "INVALID_ARGUMENT", "a negative number to a fractional power"),
        ("factorial(2.5)", "INVALID_ARGUMENT", "factorial() takes integers only"),
        ("1 +", "INVALID_ARGUMENT", "expression ends unexpectedly at column 4"),
        ("2 3", "INVALID_ARGUMENT", "invalid syntax at column 3"),
        ("", "INVALID_ARGUMENT", "expression is empty"),
        ("x + 1", "INVALID_ARGUMENT", "unknown name 'x'"),
        ("foo(1)", "INVALID_ARGUMENT", "unknown function 'foo'"),
        ("sqrt(1, 2)", "INVALID_ARGUMENT", "sqrt() takes 1 argument(s), not 2"),
        ("'a'", "INVALID_ARGUMENT", "a string is not allowed at column 1"),
        ("1 < 2", "INVALID_ARGUMENT", "a comparison is not allowed"),
        ("2 << 1", "INVALID_ARGUMENT", "operator '<<' is not allowed at column 3"),
        ("abs(x=1)", "INVALID_ARGUMENT", "abs() takes positional arguments only"),
        ("(1).real", "INVALID_ARGUMENT", "attribute access is not allowed"),
        ("9**9**9**9", "OUT_OF_RANGE", "limit is 65536"),
        ("2**65537", "OUT_OF_RANGE", "limit is 65536"),
        ("factorial(10000)", "OUT_OF_RANGE", "factorial(10000) would have about"),
        ("1e308 * 10", "OUT_OF_RANGE", "result of '*' is not a finite float"),
        ("1e309", "OUT_OF_RANGE", "number is too large for a float at column 1"),
        ("2**1024 / 1", "OUT_OF_RANGE", "too large for a float"),
        ("exp(1000)", "OUT_OF_RANGE", "result of exp() is too large"),
        ("log(8, 1)", "INVALID_ARGUMENT", "log(8, 1) is outside the domain of log"),
        (
            "lcm(" + ",".join(f"2**900-{n}" for n in range(80)) + ")",
            "OUT_OF_RANGE",
            "result of lcm() is too large",
        ),
        ("(" * 201 + "1" + ")" * 201, "RESOURCE_EXHAUSTED", "nests too deeply"),
    ],
)
def test_error_has_status_and_message(expression: str, code: str, message: str) -> None:
    error = error_of(expression)
    assert error.code == getattr(grpc.StatusCode, code)
    assert message in str(error)


def test_long_sums_cost_no_nesting_depth() -> None:
    assert value_of("1" + "+1" * 999) == "1000"
    assert value_of("-" * 1000 + "1") == "1"


def test_nesting_past_the_limit_is_resource_exhausted() -> None:
    limits = LimitSettings(max_depth=5)
    assert value_of("((((1))))", limits) == "1"
    error = error_of("abs(abs(abs(abs(abs(abs(1))))))", limits)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "deeper than 5 levels" in str(error)


def test_expression_over_the_length_limit_is_refused_before_parsing() -> None:
    error = error_of("1+" * 6000 + "1")
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(error) == "expression is 12001 characters long; the limit is 10000"


def test_evaluation_past_its_time_budget_is_resource_exhausted() -> None:
    limits = LimitSettings(max_evaluation_seconds=0.0)
    assert error_of("1 + 1", limits).code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_evaluation_past_the_callers_deadline_is_deadline_exceeded() -> None:
    expression = parse("2 * 3 + 1", LIMITS)
    with pytest.raises(EvaluationError) as caught:
        expression.evaluate(limits=LIMITS, deadline=0.0)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_parsed_expression_evaluates_over_its_variables() -> None:
    expression = parse("k**2 + 1", LIMITS, variables=("k",))
    values = [expression.evaluate({"k": k}, limits=LIMITS) for k in range(4)]
    assert values == [1, 2, 5, 10]


def test_column_counts_characters_not_bytes() -> None:
    # The right operand is checked first; 'é' is two bytes in UTF-8.
    assert str(error_of("'é' + 'x'")) == "a string is not allowed at column 7"


# Property: on small integer expressions the evaluator agrees with Python's
# own integer arithmetic, which is the semantics it documents.
_OPERATIONS = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__}
_leaf = st.integers(min_value=-50, max_value=50).map(lambda n: (f"({n})", n))
_tree = st.recursive(
    _leaf,
    lambda inner: st.tuples(inner, st.sampled_from(sorted(_OPERATIONS)), inner).map(
        lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})", _OPERATIONS[t[1]](t[0][1], t[2][1]))
    ),
    max_leaves=12,
)


@given(_tree)
def test_integer_arithmetic_matches_python(case: tuple[str, int]) -> None:
    expression, expected = case
    assert value_of(expression) == str(expected)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_text_gives_a_value_or_an_evaluation_error(text: str) -> None:
    try:
        result = evaluate(text, LIMITS)
    except EvaluationError as error:
        assert error.code != grpc.StatusCode.UNKNOWN
    else:
        assert isinstance(result, int) or math.isfinite(result)
