"""The data plane's runtime: a dispatcher that carries out the control plane's decisions on a
pool of workers (local processes now, Ray later), behind the `Runtime` interface the API uses."""

from argus.runtime.base import (
    CacheInfo,
    GenerationCancelledError,
    GenerationFailed,
    GenerationRequest,
    JobHandle,
    JobOutcome,
    Overloaded,
    ProgressUpdate,
    Runtime,
    ServingError,
)

__all__ = [
    "CacheInfo",
    "GenerationCancelledError",
    "GenerationFailed",
    "GenerationRequest",
    "JobHandle",
    "JobOutcome",
    "Overloaded",
    "ProgressUpdate",
    "Runtime",
    "ServingError",
]
