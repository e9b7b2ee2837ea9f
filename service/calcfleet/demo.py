"""Real calculations sent to a server or a fleet, with the answers printed."""

from __future__ import annotations

from calcfleet.client import CallFailedError, Client

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
