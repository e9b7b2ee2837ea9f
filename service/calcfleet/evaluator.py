"""Safe, bounded evaluation of arithmetic over a whitelist of Python's syntax.

Expressions are parsed by Python's own parser (`ast.parse`), then every node is
checked against a short whitelist and compiled into a tree of small closures.
Nothing is ever handed to `eval` or `exec`: a name, attribute, call or literal
that is not on the list is refused before anything runs. docs/semantics.md
explains the numeric rules and why this design was chosen.
"""

from __future__ import annotations

import ast
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from calcfleet.errors import (
    ArithmeticDomainError,
    DeadlinePassedError,
    ExpressionSyntaxError,
    ExpressionTooLargeError,
    ResultOutOfRangeError,
)
from calcfleet.functions import FUNCTIONS
from calcfleet.numbers import (
    Number,
    check_integer_bits,
    checked_float,
    power,
    product,
)
from calcfleet.settings import LimitSettings

Env = Mapping[str, Number]
Node = Callable[[Env], Number]


CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

_FORBIDDEN_OPERATORS = {
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.MatMult: "@",
}


class SliceSpent(Exception):  # noqa: N818 - a signal to the caller, not an error
    """The evaluation used up its slice; it may run again where it can take longer."""


class _Clock:
    """Stops an evaluation past its budget, its slice or the caller's deadline,
    or once its caller has gone away."""

    __slots__ = ("budget_end", "cancelled", "deadline", "slice_end")

    def __init__(
        self,
        budget_seconds: float,
        deadline: float | None,
        slice_seconds: float | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        now = time.monotonic()
        self.budget_end = now + budget_seconds
        self.deadline = deadline
        self.slice_end = None if slice_seconds is None else now + slice_seconds
        self.cancelled = cancelled

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise DeadlinePassedError("the call was cancelled during evaluation")
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise DeadlinePassedError("the deadline passed during evaluation")
        if now > self.budget_end:
            raise ExpressionTooLargeError(
                "evaluation took longer than the limit allows"
            )
        if self.slice_end is not None and now > self.slice_end:
            raise SliceSpent


class Expression:
    """A checked expression, ready to be evaluated many times over its variables.

    Not thread-safe: each thread that evaluates should parse its own copy.
    """

    def __init__(self, text: str, root: Node, clock_slot: list[_Clock]) -> None:
        self.text = text
        self._root = root
        self._clock_slot = clock_slot

    def evaluate(
        self,
        variables: Env | None = None,
        *,
        limits: LimitSettings,
        deadline: float | None = None,
        slice_seconds: float | None = None,
        cancelled: threading.Event | None = None,
    ) -> Number:
        """Compute the value; `deadline` is a time.monotonic() instant, if any.

        With `slice_seconds`, an evaluation that runs longer stops with
        SliceSpent, so that a server can answer cheap expressions on its event
        loop and move only the expensive ones to a worker thread. Setting
        `cancelled` stops it at its next operation.
        """
        clock = _Clock(
            limits.max_evaluation_seconds, deadline, slice_seconds, cancelled
        )
        self._clock_slot[0] = clock
        return self._root(variables or {})


def parse(
    text: str, limits: LimitSettings, variables: Sequence[str] = ()
) -> Expression:
    """Check an expression against the whitelist and the size limits."""
    if len(text) > limits.max_expression_length:
        raise ExpressionTooLargeError(
            f"expression is {len(text)} characters long; "
            f"the limit is {limits.max_expression_length}"
        )
    tree = _python_ast(text)
    clock_slot: list[_Clock] = [_Clock(limits.max_evaluation_seconds, None)]
    compiler = _Compiler(text, limits, frozenset(variables), clock_slot)
    return Expression(text, compiler.compile(tree.body, depth=0), clock_slot)


def evaluate(
    text: str, limits: LimitSettings, *, deadline: float | None = None
) -> Number:
    """Parse and evaluate one expression with no variables."""
    return parse(text, limits).evaluate(limits=limits, deadline=deadline)


def _python_ast(text: str) -> ast.Expression:
    if not text.strip():
        raise ExpressionSyntaxError("expression is empty")
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as error:
        message = error.msg or "invalid syntax"
        if "too many nested parentheses" in message:
            raise ExpressionTooLargeError("expression nests too deeply") from None
        if not error.offset or error.offset > len(text):
            raise ExpressionSyntaxError(
                "expression ends unexpectedly", len(text) + 1
            ) from None
        raise ExpressionSyntaxError(message, error.offset) from None
    except (RecursionError, MemoryError):
        # CPython builds the tree recursively, so a few thousand chained
        # operators exhaust its stack before our own depth check can run.
        raise ExpressionTooLargeError("expression nests too deeply") from None
    except ValueError as error:  # e.g. a NUL character
        raise ExpressionSyntaxError(f"expression cannot be read: {error}") from None


class _Compiler:
    """Turns a whitelisted Python AST into a tree of closures."""

    def __init__(
        self,
        text: str,
        limits: LimitSettings,
        variables: frozenset[str],
        clock_slot: list[_Clock],
    ) -> None:
        self.source = text.encode()
        # Most expressions are ASCII, where bytes and characters line up.
        self.is_ascii = text.isascii()
        self.limits = limits
        self.variables = variables
        self.clock_slot = clock_slot

    def compile(self, node: ast.expr, depth: int) -> Node:
        if depth > self.limits.max_depth:
            raise ExpressionTooLargeError(
                f"expression nests deeper than {self.limits.max_depth} levels",
                self._column(node),
            )
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self._chain(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise ExpressionSyntaxError(
            f"{_describe(node)} is not allowed", self._column(node)
        )

    def _column(self, node: ast.AST) -> int | None:
        """1-based character column of a node; ast offsets count UTF-8 bytes."""
        offset = getattr(node, "col_offset", None)
        if offset is None:
            return None
        return self._character_column(offset)

    def _character_column(self, offset: int) -> int:
        if self.is_ascii:
            return offset + 1
        return len(self.source[:offset].decode(errors="ignore")) + 1

    def _operator_column(self, node: ast.BinOp, symbol: str) -> int | None:
        start, stop = node.left.end_col_offset, node.right.col_offset
        if start is None:
            return self._column(node)
        found = self.source.find(symbol.encode(), start, stop)
        if found < 0:
            return self._column(node)
        return self._character_column(found)

    def _constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExpressionSyntaxError(
                f"{_describe(node)} is not allowed", self._column(node)
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ResultOutOfRangeError(
                "number is too large for a float", self._column(node)
            )
        if isinstance(value, int):
            check_integer_bits(value, self.limits.max_integer_bits, self._column(node))
        return lambda env: value

    def _name(self, node: ast.Name) -> Node:
        name = node.id
        if name in self.variables:
            return lambda env: env[name]
        if name in CONSTANTS:
            constant = CONSTANTS[name]
            return lambda env: constant
        known = ", ".join(sorted({*CONSTANTS, *self.variables}))
        raise ExpressionSyntaxError(
            f"unknown name {name!r} (known names: {known})", self._column(node)
        )

    def _unary(self, node: ast.UnaryOp, depth: int) -> Node:
        # A run of signs (`--2`, `-+-2`) folds into one sign, so that it costs
        # no nesting depth.
        negate = False
        operand: ast.expr = node
        while isinstance(operand, ast.UnaryOp):
            if isinstance(operand.op, ast.USub):
                negate = not negate
            elif not isinstance(operand.op, ast.UAdd):
                raise ExpressionSyntaxError(
                    f"{_describe(operand)} is not allowed", self._column(operand)
                )
            operand = operand.operand
        inner = self.compile(operand, depth + 1)
        if not negate:
            return inner
        return lambda env: -inner(env)

    def _chain(self, node: ast.BinOp, depth: int) -> Node:
        # A left-leaning run (`1 + 2 - 3 * ...`) is folded in a loop rather
        # than by recursion, so a long sum costs no nesting depth.
        steps: list[tuple[Callable[[Number, Number], Number], Node]] = []
        left: ast.expr = node
        while isinstance(left, ast.BinOp):
            operator = self._operator(left)
            steps.append((operator, self.compile(left.right, depth + 1)))
            left = left.left
        steps.reverse()
        first = self.compile(left, depth + 1)
        clock_slot = self.clock_slot

        def chain(env: Env) -> Number:
            value = first(env)
            for operator, right in steps:
                value = operator(value, right(env))
                clock_slot[0].check()
            return value

        return chain

    def _operator(self, node: ast.BinOp) -> Callable[[Number, Number], Number]:
        kind = type(node.op)
        if kind in _FORBIDDEN_OPERATORS:
            symbol = _FORBIDDEN_OPERATORS[kind]
            raise ExpressionSyntaxError(
                f"operator {symbol!r} is not allowed",
                self._operator_column(node, symbol),
            )
        symbol = _OPERATORS[kind]
        column = self._operator_column(node, symbol)
        return _arithmetic(symbol, self.limits.max_integer_bits, column)

    def _call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name):
            raise ExpressionSyntaxError(
                f"{_describe(node.func)} is not allowed", self._column(node.func)
            )
        if node.func.id not in FUNCTIONS:
            raise ExpressionSyntaxError(
                f"unknown function {node.func.id!r} (known functions: "
                f"{', '.join(sorted(FUNCTIONS))})",
                self._column(node),
            )
        function = FUNCTIONS[node.func.id]
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionSyntaxError(
                f"{function.name}() takes positional arguments only", self._column(node)
            )
        function.check_arity(len(node.args), self._column(node))
        arguments = [self.compile(argument, depth + 1) for argument in node.args]
        limits, column, clock_slot = self.limits, self._column(node), self.clock_slot

        def call(env: Env) -> Number:
            value = function.apply([a(env) for a in arguments], limits, column)
            clock_slot[0].check()
            return value

        return call


def apply_operator(symbol: str, a: Number, b: Number, limits: LimitSettings) -> Number:
    """One binary operator on two numbers, with the guards of an expression."""
    return _arithmetic(symbol, limits.max_integer_bits, None)(a, b)


def _arithmetic(
    symbol: str, max_bits: int, column: int | None
) -> Callable[[Number, Number], Number]:
    """One binary operator with the guards every operand pair needs."""

    def apply(a: Number, b: Number) -> Number:
        try:
            result = _RAW[symbol](a, b, max_bits, column)
        except ZeroDivisionError:
            raise ArithmeticDomainError(
                f"division by zero in {symbol!r}", column
            ) from None
        except OverflowError:
            raise ResultOutOfRangeError(
                f"result of {symbol!r} is too large for a float", column
            ) from None
        if isinstance(result, float):
            return checked_float(result, symbol, column)
        check_integer_bits(result, max_bits, column)
        return result

    return apply


_RAW: dict[str, Callable[[Number, Number, int, int | None], Number]] = {
    "+": lambda a, b, bits, column: a + b,
    "-": lambda a, b, bits, column: a - b,
    "*": product,
    "/": lambda a, b, bits, column: a / b,
    "//": lambda a, b, bits, column: a // b,
    "%": lambda a, b, bits, column: a % b,
    "**": power,
}


_DESCRIPTIONS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Compare: "a comparison",
    ast.BoolOp: "a logical operator",
    ast.Lambda: "a lambda",
    ast.IfExp: "a conditional",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Set: "a set",
    ast.Dict: "a dict",
    ast.JoinedStr: "a string",
    ast.NamedExpr: "an assignment",
    ast.Starred: "unpacking",
    ast.Await: "await",
}


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        kind = type(node.value).__name__
        names = {"str": "a string", "bytes": "bytes", "complex": "a complex number"}
        return names.get(kind, f"the literal {node.value!r}")
    if isinstance(node, ast.UnaryOp):
        return "operator 'not'" if isinstance(node.op, ast.Not) else "operator '~'"
    return _DESCRIPTIONS.get(type(node), f"{type(node).__name__} syntax")
