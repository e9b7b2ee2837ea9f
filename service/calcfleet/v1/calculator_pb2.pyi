from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_UNSPECIFIED: _ClassVar[Operation]
    OPERATION_ADD: _ClassVar[Operation]
    OPERATION_SUBTRACT: _ClassVar[Operation]
    OPERATION_MULTIPLY: _ClassVar[Operation]
    OPERATION_DIVIDE: _ClassVar[Operation]
    OPERATION_FLOOR_DIVIDE: _ClassVar[Operation]
    OPERATION_MODULO: _ClassVar[Operation]
    OPERATION_POWER: _ClassVar[Operation]
    OPERATION_SQRT: _ClassVar[Operation]
    OPERATION_NEGATE: _ClassVar[Operation]
    OPERATION_ABSOLUTE: _ClassVar[Operation]
    OPERATION_FACTORIAL: _ClassVar[Operation]
OPERATION_UNSPECIFIED: Operation
OPERATION_ADD: Operation
OPERATION_SUBTRACT: Operation
OPERATION_MULTIPLY: Operation
OPERATION_DIVIDE: Operation
OPERATION_FLOOR_DIVIDE: Operation
OPERATION_MODULO: Operation
OPERATION_POWER: Operation
OPERATION_SQRT: Operation
OPERATION_NEGATE: Operation
OPERATION_ABSOLUTE: Operation
OPERATION_FACTORIAL: Operation

class CalculateRequest(_message.Message):
    __slots__ = ("operation", "a", "b")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    a: str
    b: str
    def __init__(self, operation: _Optional[_Union[Operation, str]] = ..., a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...

class CalculateResponse(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: str
    def __init__(self, value: _Optional[str] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("expression",)
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    expression: str
    def __init__(self, expression: _Optional[str] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: str
    def __init__(self, value: _Optional[str] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("expressions",)
    EXPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    expressions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, expressions: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StreamResult]
    def __init__(self, results: _Optional[_Iterable[_Union[StreamResult, _Mapping]]] = ...) -> None: ...

class StreamResult(_message.Message):
    __slots__ = ("index", "value", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    value: str
    error: Error
    def __init__(self, index: _Optional[int] = ..., value: _Optional[str] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
