"""The engine layer: the protocol, its errors, and how to get a backend."""

from .protocol import (
    Conflict,
    ContainerSpec,
    DockerEngine,
    EngineError,
    EngineUnavailable,
    ExecResult,
    InvalidSpec,
    NotFound,
    PullEvent,
)

__all__ = [
    "Conflict",
    "ContainerSpec",
    "DockerEngine",
    "EngineError",
    "EngineUnavailable",
    "ExecResult",
    "InvalidSpec",
    "NotFound",
    "PullEvent",
]
