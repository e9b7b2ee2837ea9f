"""grpc.health.v1 for load balancers that read only the status code of the check."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GatedHealthServicer(HealthServicer):
    """A health service whose Check fails outright while the server is not serving.

    An ALB target group marks a target healthy when the health RPC returns the
    expected gRPC code (0), whatever the response says, so an answer of
    NOT_SERVING would still count as healthy. Failing the call with UNAVAILABLE
    takes the instance out of rotation while it warms up or drains. Watch
    keeps the standard behaviour. See
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
    """

    async def Check(  # noqa: N802 - the name is the RPC's
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = self._server_status.get(request.service)
        if status is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no service named {request.service!r}"
            )
        if status != SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"server is {name}")
        return health_pb2.HealthCheckResponse(status=status)
