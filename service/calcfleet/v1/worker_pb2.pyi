from calcfleet.v1 import calculator_pb2 as _calculator_pb2
from calcfleet.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Chunk(_message.Message):
    __slots__ = ("job_id", "index", "sum", "integral", "batch", "prime_count")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    INTEGRAL_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PRIME_COUNT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    index: int
    sum: _jobs_pb2.SumJob
    integral: IntegralPoints
    batch: _jobs_pb2.BatchJob
    prime_count: _jobs_pb2.PrimeCountJob
    def __init__(self, job_id: _Optional[str] = ..., index: _Optional[int] = ..., sum: _Optional[_Union[_jobs_pb2.SumJob, _Mapping]] = ..., integral: _Optional[_Union[IntegralPoints, _Mapping]] = ..., batch: _Optional[_Union[_jobs_pb2.BatchJob, _Mapping]] = ..., prime_count: _Optional[_Union[_jobs_pb2.PrimeCountJob, _Mapping]] = ...) -> None: ...

class IntegralPoints(_message.Message):
    __slots__ = ("job", "first", "last")
    JOB_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    job: _jobs_pb2.IntegralJob
    first: int
    last: int
    def __init__(self, job: _Optional[_Union[_jobs_pb2.IntegralJob, _Mapping]] = ..., first: _Optional[int] = ..., last: _Optional[int] = ...) -> None: ...

class ChunkResult(_message.Message):
    __slots__ = ("value", "batch", "error")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    value: str
    batch: BatchResults
    error: _calculator_pb2.Error
    def __init__(self, value: _Optional[str] = ..., batch: _Optional[_Union[BatchResults, _Mapping]] = ..., error: _Optional[_Union[_calculator_pb2.Error, _Mapping]] = ...) -> None: ...

class BatchResults(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_calculator_pb2.StreamResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_calculator_pb2.StreamResult, _Mapping]]] = ...) -> None: ...

class WorkerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("address", "running_chunks", "peers", "recent")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    address: str
    running_chunks: int
    peers: _containers.RepeatedScalarFieldContainer[str]
    recent: _containers.RepeatedCompositeFieldContainer[ChunkRecord]
    def __init__(self, address: _Optional[str] = ..., running_chunks: _Optional[int] = ..., peers: _Optional[_Iterable[str]] = ..., recent: _Optional[_Iterable[_Union[ChunkRecord, _Mapping]]] = ...) -> None: ...

class ChunkRecord(_message.Message):
    __slots__ = ("job_id", "index", "deadline_seconds", "outcome", "seconds")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    index: int
    deadline_seconds: float
    outcome: str
    seconds: float
    def __init__(self, job_id: _Optional[str] = ..., index: _Optional[int] = ..., deadline_seconds: _Optional[float] = ..., outcome: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...
