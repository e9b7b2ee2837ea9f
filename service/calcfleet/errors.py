"""The errors calcfleet raises on purpose, each with the gRPC status it earns."""

import grpc


class CalcfleetError(Exception):
    """A failure that the user can act on; shown as one line, never a traceback."""


class EvaluationError(CalcfleetError):
    """An expression that cannot be evaluated; `code` is the gRPC status it earns."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, column: int | None = None) -> None:
        where = "" if column is None else f" at column {column}"
        super().__init__(f"{message}{where}")
        self.column = column


class ExpressionSyntaxError(EvaluationError):
    """Not an arithmetic expression: bad syntax, unknown name, forbidden construct."""


class ArithmeticDomainError(EvaluationError):
    """Division by zero, or a function outside its domain (`sqrt(-1)`)."""


class ResultOutOfRangeError(EvaluationError):
    """The result does not fit: an integer over the limit, a float overflow."""

    code = grpc.StatusCode.OUT_OF_RANGE


class ExpressionTooLargeError(EvaluationError):
    """The input passes a size or work limit: length, nesting, evaluation time."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlinePassedError(EvaluationError):
    """The caller's deadline passed before the evaluation finished."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
