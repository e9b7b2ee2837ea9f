import datetime

from calcfleet.v1 import calculator_pb2 as _calculator_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class SumJob(_message.Message):
    __slots__ = ("expression", "start", "stop")
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    expression: str
    start: int
    stop: int
    def __init__(self, expression: _Optional[str] = ..., start: _Optional[int] = ..., stop: _Optional[int] = ...) -> None: ...

class IntegralJob(_message.Message):
    __slots__ = ("expression", "lower", "upper", "intervals")
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    expression: str
    lower: str
    upper: str
    intervals: int
    def __init__(self, expression: _Optional[str] = ..., lower: _Optional[str] = ..., upper: _Optional[str] = ..., intervals: _Optional[int] = ...) -> None: ...

class BatchJob(_message.Message):
    __slots__ = ("expressions",)
    EXPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    expressions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, expressions: _Optional[_Iterable[str]] = ...) -> None: ...

class PrimeCountJob(_message.Message):
    __slots__ = ("start", "stop")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    start: int
    stop: int
    def __init__(self, start: _Optional[int] = ..., stop: _Optional[int] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("sum", "integral", "batch", "prime_count", "idempotency_key", "timeout")
    SUM_FIELD_NUMBER: _ClassVar[int]
    INTEGRAL_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PRIME_COUNT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    sum: SumJob
    integral: IntegralJob
    batch: BatchJob
    prime_count: PrimeCountJob
    idempotency_key: str
    timeout: _duration_pb2.Duration
    def __init__(self, sum: _Optional[_Union[SumJob, _Mapping]] = ..., integral: _Optional[_Union[IntegralJob, _Mapping]] = ..., batch: _Optional[_Union[BatchJob, _Mapping]] = ..., prime_count: _Optional[_Union[PrimeCountJob, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "kind", "chunks_total", "chunks_done", "fraction_done", "partial_value", "value", "results", "error", "workers")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DONE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_DONE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    kind: str
    chunks_total: int
    chunks_done: int
    fraction_done: float
    partial_value: str
    value: str
    results: _containers.RepeatedCompositeFieldContainer[_calculator_pb2.StreamResult]
    error: _calculator_pb2.Error
    workers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., kind: _Optional[str] = ..., chunks_total: _Optional[int] = ..., chunks_done: _Optional[int] = ..., fraction_done: _Optional[float] = ..., partial_value: _Optional[str] = ..., value: _Optional[str] = ..., results: _Optional[_Iterable[_Union[_calculator_pb2.StreamResult, _Mapping]]] = ..., error: _Optional[_Union[_calculator_pb2.Error, _Mapping]] = ..., workers: _Optional[_Iterable[str]] = ...) -> None: ...
