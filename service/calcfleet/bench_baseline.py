"""The benchmark's baseline: a bare grpc.aio server whose Evaluate does nothing."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from calcfleet import portfile
from calcfleet.v1 import calculator_pb2 as pb
from calcfleet.v1 import calculator_pb2_grpc


class NoOpCalculator(calculator_pb2_grpc.CalculatorServicer):
    """Answers without parsing or computing, to price gRPC itself."""

    async def Evaluate(  # noqa: N802 - the RPC's name
        self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateResponse:
        return pb.EvaluateResponse(value="7")

    async def EvaluateStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[pb.StreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamResponse]:
        index = 0
        async for request in request_iterator:
            response = pb.StreamResponse()
            for _ in request.expressions:
                response.results.add(index=index, value="7")
                index += 1
            yield response


async def serve(listen: str, port_file: Path) -> None:
    server = grpc.aio.server()
    calculator_pb2_grpc.add_CalculatorServicer_to_server(NoOpCalculator(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    portfile.write(port_file, port)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await stopped.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.listen, arguments.port_file))


if __name__ == "__main__":
    main()
