"""A Python client for a calcfleet server or a fleet behind a load balancer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from calcfleet.errors import CalcfleetError
from calcfleet.v1 import calculator_pb2 as pb
from calcfleet.v1 import calculator_pb2_grpc, jobs_pb2, jobs_pb2_grpc

# Calls that are safe to send twice are retried by gRPC itself when an
# instance is unavailable (draining, restarting, just killed): the same
# expression gives the same answer wherever it runs. Streams are not retried
# once a response has arrived, so they are not listed.
# See https://github.com/grpc/proposal/blob/master/A6-client-retries.md
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.05s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [
                {"service": "calcfleet.v1.Calculator", "method": "Calculate"},
                {"service": "calcfleet.v1.Calculator", "method": "Evaluate"},
                {"service": "grpc.health.v1.Health", "method": "Check"},
                # Reading or cancelling a job twice changes nothing more than
                # once; Submit is safe only with an idempotency key, which
                # Client.submit always sends.
                {"service": "calcfleet.v1.Jobs", "method": "Get"},
                {"service": "calcfleet.v1.Jobs", "method": "Cancel"},
                {"service": "calcfleet.v1.Jobs", "method": "Submit"},
            ],
            "retryPolicy": RETRY_POLICY,
        }
    ]
}


# Expressions per stream message: a message costs several times more than a
# short expression, so batching is what makes a stream fast. A batch is also
# cut at half the server's default 1 MiB message limit.
STREAM_BATCH = 256
STREAM_BATCH_BYTES = 512 * 1024


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    length = 0
    for item in items:
        if batch and length + len(item) > STREAM_BATCH_BYTES:
            yield batch
            batch, length = [], 0
        batch.append(item)
        length += len(item)
        if len(batch) >= size:
            yield batch
            batch, length = [], 0
    if batch:
        yield batch


class CallFailedError(CalcfleetError):
    """A call ended with a gRPC status other than OK."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> CallFailedError:
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        return cls(code, details or code.name.lower())


class Client:
    """One channel to one target, reused for every call; deadlines on every call."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 10.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
        server_name: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        options: list[tuple[str, str | int]] = [
            ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls or root_certificates:
            credentials = grpc.ssl_channel_credentials(root_certificates)
            self.channel = grpc.secure_channel(target, credentials, options)
        else:
            self.channel = grpc.insecure_channel(target, options)
        self.calculator = calculator_pb2_grpc.CalculatorStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.jobs = jobs_pb2_grpc.JobsStub(self.channel)

    def evaluate(self, expression: str, timeout: float | None = None) -> str:
        """The exact text of an expression's value."""
        request = pb.EvaluateRequest(expression=expression)
        response = self._call(self.calculator.Evaluate, request, timeout)
        return str(response.value)

    def calculate(
        self, operation: str, a: str, b: str = "", timeout: float | None = None
    ) -> str:
        """One operation by name (`add`, `sqrt`, `floor_divide`...) on text operands."""
        name = f"OPERATION_{operation.upper()}"
        # An enum wrapper, not a dict: it has keys() but no `in`.
        if name not in pb.Operation.keys() or name.endswith("UNSPECIFIED"):  # noqa: SIM118
            raise CalcfleetError(f"unknown operation {operation!r}")
        request = pb.CalculateRequest(operation=name, a=a, b=b)
        return str(self._call(self.calculator.Calculate, request, timeout).value)

    def evaluate_many(
        self,
        expressions: Iterable[str],
        timeout: float | None = None,
        batch: int = STREAM_BATCH,
    ) -> Iterator[pb.StreamResult]:
        """Stream expressions; results come back in order, errors as results.

        Up to `batch` expressions travel in one message, sent when it is full
        or when the input ends; pass batch=1 for input typed at a terminal.
        """
        requests = (
            pb.StreamRequest(expressions=chunk)
            for chunk in _batches(expressions, batch)
        )
        try:
            for response in self.calculator.EvaluateStream(requests, timeout=timeout):
                yield from response.results
        except grpc.RpcError as error:
            raise CallFailedError.from_rpc_error(error) from None

    def submit(
        self,
        request: jobs_pb2.SubmitJobRequest,
        *,
        key: str = "",
        job_timeout: float | None = None,
        timeout: float | None = None,
    ) -> jobs_pb2.Job:
        """Start a job; without `key` a fresh one is made, so retries stay safe."""
        submitted = jobs_pb2.SubmitJobRequest()
        submitted.CopyFrom(request)
        submitted.idempotency_key = key or request.idempotency_key or str(uuid.uuid4())
        if job_timeout is not None:
            submitted.timeout.FromNanoseconds(int(job_timeout * 1e9))
        return self._call(self.jobs.Submit, submitted, timeout)

    def get_job(self, job_id: str, timeout: float | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.GetJobRequest(job_id=job_id)
        return self._call(self.jobs.Get, request, timeout)

    def cancel_job(self, job_id: str, timeout: float | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.CancelJobRequest(job_id=job_id)
        return self._call(self.jobs.Cancel, request, timeout)

    def watch_job(
        self, job_id: str, timeout: float | None = None
    ) -> Iterator[jobs_pb2.Job]:
        """The job as it progresses; raises CallFailedError if it fails.

        `timeout` bounds the whole watch; None watches until the job ends.
        """
        request = jobs_pb2.WatchJobRequest(job_id=job_id)
        try:
            yield from self.jobs.Watch(request, timeout=timeout)
        except grpc.RpcError as error:
            raise CallFailedError.from_rpc_error(error) from None

    def is_serving(self, service: str = "", timeout: float | None = None) -> bool:
        """True when the health check answers SERVING; False when it fails."""
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            response = self._call(self.health.Check, request, timeout)
        except CallFailedError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable,
        request: Any,
        timeout: float | None,
    ) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as error:
            raise CallFailedError.from_rpc_error(error) from None

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
