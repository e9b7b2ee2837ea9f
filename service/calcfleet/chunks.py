"""Jobs cut into chunks, one chunk computed, and chunk results combined."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import grpc

from calcfleet.calculator import error_of
from calcfleet.errors import (
    CalcfleetError,
    DeadlinePassedError,
    EvaluationError,
    ExpressionSyntaxError,
    ExpressionTooLargeError,
    ResultOutOfRangeError,
)
from calcfleet.evaluator import evaluate, parse
from calcfleet.numbers import Number, check_integer_bits, checked_float, to_text
from calcfleet.settings import JobSettings, LimitSettings
from calcfleet.v1 import calculator_pb2, jobs_pb2, worker_pb2

# Prime counts sieve with base primes up to sqrt(stop); this keeps that sieve
# small (10**6 numbers) whatever the range.
MAX_PRIME = 10**12


class ChunkCancelledError(CalcfleetError):
    """The chunk's job was cancelled, or its caller went away."""


class JobTermError(EvaluationError):
    """One term of a job failed; the message names the term (`term k=5: ...`)."""

    def __init__(self, term: str, error: EvaluationError) -> None:
        CalcfleetError.__init__(self, f"term {term}: {error}")
        self.code = error.code
        self.column = error.column


class StopCheck:
    """Raises once the chunk is cancelled or its deadline passed.

    Called between terms, which costs a small fraction of a term; a term
    itself also stops at the deadline, after any of its operations.
    """

    def __init__(self, cancelled: threading.Event, deadline: float | None) -> None:
        self.cancelled = cancelled
        self.deadline = deadline

    def __call__(self) -> None:
        if self.cancelled.is_set():
            raise ChunkCancelledError("chunk cancelled")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlinePassedError("the job's deadline passed")


def stop_check(cancelled: threading.Event, deadline: float | None) -> StopCheck:
    return StopCheck(cancelled, deadline)


def kind_of(request: jobs_pb2.SubmitJobRequest | worker_pb2.Chunk) -> str:
    kind = request.WhichOneof("kind")
    if kind is None:
        raise ExpressionSyntaxError("the job has no kind: set sum, integral, batch...")
    return kind


# --- cutting a job into chunks ---


def split(
    request: jobs_pb2.SubmitJobRequest, settings: JobSettings, limits: LimitSettings
) -> list[worker_pb2.Chunk]:
    """Check a job against the limits, then cut it into chunks in order."""
    kind = kind_of(request)
    if kind == "sum":
        chunks = _split_sum(request.sum, settings, limits)
    elif kind == "integral":
        chunks = _split_integral(request.integral, settings, limits)
    elif kind == "batch":
        chunks = _split_batch(request.batch, settings)
    else:
        chunks = _split_primes(request.prime_count, settings)
    if len(chunks) > settings.max_chunks:
        raise ExpressionTooLargeError(
            f"the job needs {len(chunks)} chunks; the limit is {settings.max_chunks}"
        )
    for index, chunk in enumerate(chunks):
        chunk.index = index
    return chunks


def _check_range(start: int, stop: int, what: str, settings: JobSettings) -> int:
    size = stop - start + 1
    if size <= 0:
        raise ExpressionSyntaxError(f"{what} is empty: {start} .. {stop}")
    if size > settings.max_range:
        raise ExpressionTooLargeError(
            f"{what} has {size} terms; the limit is {settings.max_range}"
        )
    return size


def _pieces(first: int, last: int, settings: JobSettings) -> list[tuple[int, int]]:
    """first..last cut into runs of equal size, few enough for max_chunks."""
    size = last - first + 1
    step = max(settings.chunk_terms, math.ceil(size / settings.max_chunks))
    return [(a, min(a + step - 1, last)) for a in range(first, last + 1, step)]


def _split_sum(
    job: jobs_pb2.SumJob, settings: JobSettings, limits: LimitSettings
) -> list[worker_pb2.Chunk]:
    parse(job.expression, limits, variables=("k",))
    _check_range(job.start, job.stop, "the range of k", settings)
    return [
        worker_pb2.Chunk(
            sum=jobs_pb2.SumJob(expression=job.expression, start=a, stop=b)
        )
        for a, b in _pieces(job.start, job.stop, settings)
    ]


def _split_integral(
    job: jobs_pb2.IntegralJob, settings: JobSettings, limits: LimitSettings
) -> list[worker_pb2.Chunk]:
    parse(job.expression, limits, variables=("x",))
    if job.intervals < 2 or job.intervals % 2:
        raise ExpressionSyntaxError(
            f"Simpson's rule needs an even number of intervals, at least 2; "
            f"got {job.intervals}"
        )
    _check_range(0, job.intervals - 1, "the integral's intervals", settings)
    _bounds(job, limits)
    return [
        worker_pb2.Chunk(integral=worker_pb2.IntegralPoints(job=job, first=a, last=b))
        for a, b in _pieces(0, job.intervals, settings)
    ]


def _split_batch(
    job: jobs_pb2.BatchJob, settings: JobSettings
) -> list[worker_pb2.Chunk]:
    count = len(job.expressions)
    if count == 0:
        raise ExpressionSyntaxError("the batch has no expressions")
    if count > settings.max_batch_expressions:
        raise ExpressionTooLargeError(
            f"the batch has {count} expressions; "
            f"the limit is {settings.max_batch_expressions}"
        )
    size = settings.batch_chunk_size
    return [
        worker_pb2.Chunk(
            batch=jobs_pb2.BatchJob(expressions=job.expressions[a : a + size])
        )
        for a in range(0, count, size)
    ]


def _split_primes(
    job: jobs_pb2.PrimeCountJob, settings: JobSettings
) -> list[worker_pb2.Chunk]:
    _check_range(job.start, job.stop, "the prime count's range", settings)
    if job.stop > MAX_PRIME:
        raise ExpressionTooLargeError(f"prime counts go up to {MAX_PRIME}")
    return [
        worker_pb2.Chunk(prime_count=jobs_pb2.PrimeCountJob(start=a, stop=b))
        for a, b in _pieces(job.start, job.stop, settings)
    ]


def _bounds(job: jobs_pb2.IntegralJob, limits: LimitSettings) -> tuple[float, float]:
    lower, upper = evaluate(job.lower, limits), evaluate(job.upper, limits)
    try:
        return float(lower), float(upper)
    except OverflowError:
        raise ResultOutOfRangeError(
            "an integral's bound is too large for a float"
        ) from None


# --- computing one chunk (on a chunk thread) ---


def compute(
    chunk: worker_pb2.Chunk, limits: LimitSettings, check: StopCheck
) -> worker_pb2.ChunkResult:
    """One chunk's result; a failing term becomes the result's error."""
    kind = kind_of(chunk)
    try:
        if kind == "batch":
            results = _batch(chunk, limits, check)
            return worker_pb2.ChunkResult(
                batch=worker_pb2.BatchResults(results=results)
            )
        if kind == "sum":
            value: Number = _sum(chunk.sum, limits, check)
        elif kind == "integral":
            value = _integral(chunk.integral, limits, check)
        else:
            value = _count_primes(
                chunk.prime_count.start, chunk.prime_count.stop, check
            )
    except (DeadlinePassedError, ChunkCancelledError):
        raise
    except EvaluationError as error:
        return worker_pb2.ChunkResult(error=error_of(error))
    return worker_pb2.ChunkResult(value=to_text(value))


def _term(text: str, error: EvaluationError) -> EvaluationError:
    if isinstance(error, DeadlinePassedError):
        return error
    return JobTermError(text, error)


def _sum(job: jobs_pb2.SumJob, limits: LimitSettings, check: StopCheck) -> Number:
    expression = parse(job.expression, limits, variables=("k",))
    total: Number = 0
    for k in range(job.start, job.stop + 1):
        check()
        try:
            term = expression.evaluate({"k": k}, limits=limits, deadline=check.deadline)
            total = _add(total, term)
            if isinstance(total, float):
                total = checked_float(total, "+", None)
            else:
                check_integer_bits(total, limits.max_integer_bits, None)
        except EvaluationError as error:
            raise _term(f"k={k}", error) from None
    return total


def _integral(
    points: worker_pb2.IntegralPoints, limits: LimitSettings, check: StopCheck
) -> float:
    job = points.job
    lower, upper = _bounds(job, limits)
    step = (upper - lower) / job.intervals
    expression = parse(job.expression, limits, variables=("x",))
    total = 0.0
    for i in range(points.first, points.last + 1):
        check()
        weight = 1 if i in (0, job.intervals) else 4 if i % 2 else 2
        x = lower + i * step
        try:
            value = expression.evaluate(
                {"x": x}, limits=limits, deadline=check.deadline
            )
            total = _add(total, weight * _add(0.0, value))
            total = checked_float(total, "+", None)
        except EvaluationError as error:
            raise _term(f"x={x!r}", error) from None
    return total


def _add(total: Number, value: Number) -> Number:
    """total + value; a huge integer meeting a float is out of range, not a crash."""
    try:
        return total + value
    except OverflowError:
        raise ResultOutOfRangeError("a sum is too large for a float") from None


def _batch(
    chunk: worker_pb2.Chunk, limits: LimitSettings, check: StopCheck
) -> list[calculator_pb2.StreamResult]:
    results = []
    for index, text in enumerate(chunk.batch.expressions):
        check()
        try:
            value = evaluate(text, limits)
            results.append(
                calculator_pb2.StreamResult(index=index, value=to_text(value))
            )
        except EvaluationError as error:
            results.append(
                calculator_pb2.StreamResult(index=index, error=error_of(error))
            )
    return results


def _count_primes(start: int, stop: int, check: StopCheck) -> int:
    """Primes in start..stop by a sieve of that segment with the primes to sqrt."""
    start = max(start, 2)
    if stop < start:
        return 0
    segment = bytearray([1]) * (stop - start + 1)
    for prime in _small_primes(math.isqrt(stop)):
        check()
        first = max(prime * prime, -(-start // prime) * prime)
        if first <= stop:
            count = len(range(first - start, len(segment), prime))
            segment[first - start :: prime] = bytes(count)
    return segment.count(1)


def _small_primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[: min(2, limit + 1)] = bytes(min(2, limit + 1))
    for n in range(2, math.isqrt(limit) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit + 1, n)))
    return [n for n in range(limit + 1) if sieve[n]]


# --- combining chunk results (on the owner) ---


def combine_values(
    job: jobs_pb2.SubmitJobRequest, values: Sequence[str], limits: LimitSettings
) -> str:
    """The job's value from its chunks' values, added in chunk order."""
    total: Number = 0
    for text in values:
        total = _add(total, _number(text))
    if isinstance(total, int):
        check_integer_bits(total, limits.max_integer_bits, None)
    if kind_of(job) == "integral":
        lower, upper = _bounds(job.integral, limits)
        step = (upper - lower) / job.integral.intervals
        total = checked_float(step / 3 * total, "*", None)
    return to_text(total)


def _number(text: str) -> Number:
    return float(text) if any(mark in text for mark in ".eEn") else int(text)


def renumber(
    results: Sequence[worker_pb2.ChunkResult], batch_size: int
) -> list[calculator_pb2.StreamResult]:
    """A batch's results from its chunks, numbered by position in the whole batch."""
    combined = []
    for chunk_index, result in enumerate(results):
        for item in result.batch.results:
            item.index = chunk_index * batch_size + item.index
            combined.append(item)
    return combined


def error_code(result: worker_pb2.ChunkResult) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == result.error.code)
