"""Real calculations sent to a server or a fleet, with the answers printed."""

from __future__ import annotations

from calcfleet.client import CallFailedError, Client
from calcfleet.v1 import jobs_pb2

EXPRESSIONS = [
    "2**100 + 1",
    "3 * (4 - 1) + 2**100",
    "sqrt(2) * sqrt(2)",
    "factorial(30) // factorial(28)",
    "-2**2",
    "7 / 2",
    "-7 // 2",
    "1 / 0",
    "9**9**9**9",
]


def show(target: str) -> None:
    """Send each demonstration expression to `target` and print what came back."""
    with Client(target) as client:
        print(f"Calling {target}:")
        for expression in EXPRESSIONS:
            try:
                answer = client.evaluate(expression)
            except CallFailedError as error:
                answer = f"refused: {error}"
            print(f"  {expression:<32} = {answer}")

        print("Streaming three expressions over one call:")
        for result in client.evaluate_many(["1+1", "2**64", "log(-1)"]):
            shown = result.value if result.HasField("value") else result.error.message
            print(f"  [{result.index}] {shown}")
        print(f"  power 2 10 = {client.calculate('power', '2', '10')}")


def show_job(target: str) -> None:
    """Run a sum job through `target` and print its value and who worked on it."""
    terms = 2_000_000
    request = jobs_pb2.SubmitJobRequest(
        sum=jobs_pb2.SumJob(expression="k**2", start=1, stop=terms)
    )
    with Client(target) as client:
        print(f"A distributed job through {target}: sum of k**2 for k = 1..{terms:,}")
        job = client.submit(request)
        for update in client.watch_job(job.id, timeout=120):
            job = update
    exact = terms * (terms + 1) * (2 * terms + 1) // 6
    print(f"  = {job.value} ({'exact' if job.value == str(exact) else 'WRONG'})")
    print(f"  {job.chunks_total} chunks, run by {', '.join(job.workers)}")
