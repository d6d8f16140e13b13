"""kiln for Python: CUDA C++ compiled at run time through kiln's verified kernel cache (the same
one kiln's CLI, C++ and Go use), launched with its arguments checked, and errors explained.

    import kiln, cupy
    k = kiln.compile(SOURCE).kernel("saxpy")
    x = cupy.ones(n, cupy.float32); y = cupy.ones(n, cupy.float32)
    k((n + 255) // 256, 256, (2.0, x, y, n))

The package runs on kiln's C ABI (libkiln.so) through its native part ``kiln._native``.
"""

from . import _native
from .errors import (CancelledError, CompileError, DriverNotFoundError, Error, Explanation, IllegalAddressError,
                     InvalidArgumentError, LinkError, NvrtcNotFoundError, OutOfMemoryError, TimeoutError,
                     VersionMismatchError, explain)
from .compiling import Cache, DeviceLibrary, Diagnostic, Image, Target, cache_stats, compile, default_cache
from .launching import Kernel, Module
from .memory import (DeviceBuffer, Event, ManagedBuffer, PinnedPool, Stream, borrow_stream, default_pinned_pool,
                     default_stream, empty, managed_empty, pinned_array, pinned_empty, pool_stats, to_device, zeros)
from .environment import (Device, allocation_report, choose_gpus, device_count, devices, doctor, memory_info, topology,
                          version)

__version__ = _native.version()

__all__ = [
    "Cache", "CancelledError", "CompileError", "Device", "DeviceBuffer", "DeviceLibrary", "Diagnostic", "DriverNotFoundError",
    "Error", "Event", "Explanation", "IllegalAddressError", "Image", "InvalidArgumentError", "Kernel", "LinkError",
    "ManagedBuffer", "Module", "NvrtcNotFoundError", "OutOfMemoryError", "PinnedPool", "Stream", "Target",
    "TimeoutError", "VersionMismatchError", "allocation_report", "borrow_stream", "cache_stats", "choose_gpus",
    "compile", "default_cache", "default_pinned_pool", "default_stream", "device_count", "devices", "doctor",
    "empty", "explain", "managed_empty", "memory_info", "pinned_array", "pinned_empty", "pool_stats", "to_device",
    "topology", "version", "zeros"
]
