"""Jobs cut into chunks and combined: the same result however they are cut."""

from __future__ import annotations

import dataclasses
import math
import threading

import grpc
import pytest

from calcfleet import chunks
from calcfleet.errors import EvaluationError
from calcfleet.settings import JobSettings, LimitSettings
from calcfleet.v1 import jobs_pb2, worker_pb2

LIMITS = LimitSettings()


# A check that never stops the chunk: not cancelled, no deadline.
_never = chunks.stop_check(threading.Event(), None)


def _run(request: jobs_pb2.SubmitJobRequest, settings: JobSettings) -> str:
    pieces = chunks.split(request, settings, LIMITS)
    results = [chunks.compute(piece, LIMITS, _never) for piece in pieces]
    assert not any(r.HasField("error") for r in results)
    return chunks.combine_values(request, [r.value for r in results], LIMITS)


def _sum(expression: str, start: int, stop: int) -> jobs_pb2.SubmitJobRequest:
    job = jobs_pb2.SumJob(expression=expression, start=start, stop=stop)
    return jobs_pb2.SubmitJobRequest(sum=job)


@pytest.mark.parametrize("chunk_terms", [1, 7, 1000, 100_000])
def test_sum_of_squares_is_exact_however_it_is_cut(chunk_terms: int) -> None:
    settings = JobSettings(chunk_terms=chunk_terms)
    assert _run(_sum("k**2", 1, 5000), settings) == str(5000 * 5001 * 10001 // 6)


def test_float_sum_is_the_same_on_one_chunk_as_on_many_when_cut_alike() -> None:
    settings = JobSettings(chunk_terms=10)
    first = _run(_sum("1/k", 1, 1000), settings)
    second = _run(_sum("1/k", 1, 1000), settings)
    assert first == second
    assert math.isclose(float(first), sum(1 / k for k in range(1, 1001)))


def test_range_larger_than_chunk_limit_gets_larger_chunks() -> None:
    settings = JobSettings(chunk_terms=10, max_chunks=100)
    pieces = chunks.split(_sum("k", 1, 10_000), settings, LIMITS)
    assert len(pieces) == 100
    assert [p.index for p in pieces] == list(range(100))
    assert (pieces[0].sum.start, pieces[0].sum.stop) == (1, 100)


def test_simpson_is_exact_for_a_cubic() -> None:
    job = jobs_pb2.IntegralJob(expression="x**3", lower="0", upper="2", intervals=10)
    request = jobs_pb2.SubmitJobRequest(integral=job)
    assert float(_run(request, JobSettings(chunk_terms=3))) == pytest.approx(4.0)


def test_prime_count_matches_known_values() -> None:
    settings = JobSettings(chunk_terms=10_000)
    request = jobs_pb2.SubmitJobRequest(
        prime_count=jobs_pb2.PrimeCountJob(start=1, stop=1_000_000)
    )
    assert _run(request, settings) == "78498"
    middle = jobs_pb2.PrimeCountJob(start=90, stop=110)
    assert _run(jobs_pb2.SubmitJobRequest(prime_count=middle), settings) == "5"


def test_failing_term_is_named_in_the_chunk_result() -> None:
    piece = chunks.split(_sum("1/(k-5)", 0, 10), JobSettings(), LIMITS)[0]
    result = chunks.compute(piece, LIMITS, _never)
    assert result.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert result.error.message == "term k=5: division by zero in '/' at column 2"


def test_batch_results_keep_their_place_in_the_whole_batch() -> None:
    settings = JobSettings(batch_chunk_size=2)
    expressions = ["1+1", "1/0", "2**10", "x", "3"]
    request = jobs_pb2.SubmitJobRequest(
        batch=jobs_pb2.BatchJob(expressions=expressions)
    )
    results = [
        chunks.compute(p, LIMITS, _never)
        for p in chunks.split(request, settings, LIMITS)
    ]
    combined = chunks.renumber(results, settings.batch_chunk_size)
    assert [r.index for r in combined] == [0, 1, 2, 3, 4]
    assert [r.value for r in combined] == ["2", "", "1024", "", "3"]
    assert combined[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (_sum("k", 5, 4), grpc.StatusCode.INVALID_ARGUMENT, "is empty"),
        (_sum("k", 0, 10**10), grpc.StatusCode.RESOURCE_EXHAUSTED, "the limit is"),
        (_sum("j", 0, 10), grpc.StatusCode.INVALID_ARGUMENT, "unknown name 'j'"),
        (jobs_pb2.SubmitJobRequest(), grpc.StatusCode.INVALID_ARGUMENT, "no kind"),
        (
            jobs_pb2.SubmitJobRequest(batch=jobs_pb2.BatchJob(expressions=["1"] * 11)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "11 expressions",
        ),
    ],
)
def test_limits_are_checked_before_anything_runs(
    request_: jobs_pb2.SubmitJobRequest, code: grpc.StatusCode, words: str
) -> None:
    settings = JobSettings(max_range=10**9, max_batch_expressions=10)
    with pytest.raises(EvaluationError) as refused:
        chunks.split(request_, settings, LIMITS)
    assert refused.value.code == code
    assert words in str(refused.value)


def test_cancelled_chunk_stops_at_its_next_check() -> None:
    cancelled = threading.Event()
    cancelled.set()
    check = chunks.stop_check(cancelled, None)
    piece = worker_pb2.Chunk(sum=jobs_pb2.SumJob(expression="k", start=0, stop=10**9))
    with pytest.raises(chunks.ChunkCancelledError):
        chunks.compute(piece, LIMITS, check)


def test_integer_sum_over_the_bit_limit_is_out_of_range() -> None:
    small = dataclasses.replace(LIMITS, max_integer_bits=64)
    piece = worker_pb2.Chunk(sum=jobs_pb2.SumJob(expression="2**62", start=1, stop=10))
    result = chunks.compute(piece, small, _never)
    assert result.error.code == grpc.StatusCode.OUT_OF_RANGE.value[0]
    assert result.error.message.startswith("term k=")


def test_float_overflow_in_a_job_is_out_of_range_not_a_crash() -> None:
    huge_bound = jobs_pb2.IntegralJob(
        expression="x", lower="0", upper="2**2000", intervals=4
    )
    with pytest.raises(EvaluationError) as refused:
        chunks.split(
            jobs_pb2.SubmitJobRequest(integral=huge_bound), JobSettings(), LIMITS
        )
    assert refused.value.code == grpc.StatusCode.OUT_OF_RANGE

    # The first term is the integer 2**1100, the second the float 0.5: their
    # sum is past a double's range.
    terms = "max(2**(1100*(2-k))*(2-k), (k-1)*0.5)"
    piece = chunks.split(_sum(terms, 1, 2), JobSettings(), LIMITS)[0]
    result = chunks.compute(piece, LIMITS, _never)
    assert result.error.code == grpc.StatusCode.OUT_OF_RANGE.value[0]
    assert result.error.message == "term k=2: a sum is too large for a float"
