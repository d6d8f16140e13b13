"""Streams, events and memory: device buffers from the stream-ordered pool, pinned host memory from
the pinned pool (as NumPy arrays, without a copy), managed memory; copies from NumPy arrays, staged
through pinned buffers when the host memory is pageable. Copies and waits release the GIL.

Device buffers expose ``__cuda_array_interface__`` (version 3), so ``cupy.asarray(buffer)`` and
``torch.as_tensor(buffer, device="cuda")`` view them without a copy.
"""

import math
import threading

import numpy as np

from . import _native

Stream = _native.Stream
Event = _native.Event


def _stream_handle(stream):
    if isinstance(stream, int):
        return stream
    if hasattr(stream, "__cuda_stream__"):  # cuda.core's protocol: (version, handle)
        return int(stream.__cuda_stream__()[1])
    for attribute in ("cuda_stream", "ptr", "handle"):  # PyTorch, CuPy, Numba
        value = getattr(stream, attribute, None)
        if isinstance(value, int):
            return value
    raise TypeError(f"cannot read a CUDA stream handle from a {type(stream).__name__}: pass an int, an object with "
                    "__cuda_stream__, a torch.cuda.Stream or a cupy.cuda.Stream")


def borrow_stream(stream, device=0):
    """A :class:`Stream` over another library's stream (a ``cupy.cuda.Stream``, a
    ``torch.cuda.Stream``, anything with ``__cuda_stream__``, or the handle as an int), so kiln's
    launches and copies join its order and need no synchronization between the two. kiln never
    destroys it; the kiln Stream keeps the object alive. It must belong to ``device``'s primary
    context (checked), as CuPy's and PyTorch's streams do."""
    return _native.borrow_stream(device, _stream_handle(stream), stream)


def default_stream(device=0):
    """kiln's stream for a device when a call names none (non-blocking, one per device)."""
    return _native.default_stream(device)


def _layout(shape, dtype):
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape {shape} has a negative dimension")
    return shape, dtype, math.prod(shape) * dtype.itemsize


class _Typed:
    """What device and managed buffers share: a dtype and a shape over their bytes."""

    @property
    def dtype(self):
        return np.dtype(self.typestr)

    @property
    def size(self):
        return math.prod(self.shape)

    def __len__(self):
        return self.shape[0] if self.shape else 1

    def to_numpy(self, stream=None):
        """A NumPy copy (the copy waits for the work before it on ``stream``)."""
        out = np.empty(self.shape, self.dtype)
        if out.nbytes:
            self.copy_to_host(out, stream=stream)
        return out

    def __repr__(self):
        if not self.__dict__.get("_made"):  # its allocation failed: the native part holds nothing
            return f"<{type(self).__name__}, not allocated>"
        return (f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device}, "
                f"address=0x{self.address:x})")


class DeviceBuffer(_Typed, _native.DeviceBuffer):
    """Device memory from the device's stream-ordered pool, freed in order on its stream when
    closed or collected. ``DeviceBuffer(shape, dtype)``; see also :func:`to_device`."""

    def __init__(self, shape, dtype=np.uint8, *, device=0, stream=None, tag="python"):
        shape, dtype, nbytes = _layout(shape, dtype)
        # A zero-size array still gets an address, as CuPy's do.
        _native.DeviceBuffer.__init__(self, max(nbytes, 1), stream, device, tag, shape, dtype.str)
        self._made = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def empty(shape, dtype=np.float32, *, device=0, stream=None):
    """An uninitialised :class:`DeviceBuffer`."""
    return DeviceBuffer(shape, dtype, device=device, stream=stream)


def zeros(shape, dtype=np.float32, *, device=0, stream=None):
    b = DeviceBuffer(shape, dtype, device=device, stream=stream)
    b.memset(0, stream=stream)
    return b


def to_device(array, *, device=0, stream=None):
    """A :class:`DeviceBuffer` holding a copy of a NumPy array (or anything NumPy can read). The
    copy is staged through pinned memory when ``array`` is pageable, and done when this returns."""
    array = np.ascontiguousarray(array)
    b = DeviceBuffer(array.shape, array.dtype, device=device, stream=stream)
    if array.nbytes:
        b.copy_from_host(array, stream=stream)
    return b


class ManagedBuffer(_Typed, _native.ManagedBuffer):
    """Managed (unified) memory: one address valid on the device and the host. :meth:`numpy`
    views it from the host without a copy (touch it only while no kernel uses it)."""

    def __init__(self, shape, dtype=np.uint8, *, device=0, tag="python"):
        shape, dtype, nbytes = _layout(shape, dtype)
        _native.ManagedBuffer.__init__(self, max(nbytes, 1), device, tag, shape, dtype.str)
        self._made = True

    def numpy(self):
        return np.frombuffer(self, dtype=self.dtype, count=self.size).reshape(self.shape)


def managed_empty(shape, dtype=np.float32, *, device=0):
    return ManagedBuffer(shape, dtype, device=device)


class PinnedPool:
    """A caching pool of pinned (page-locked) host memory. ``plain=True`` uses malloc with the same
    bookkeeping, for machines without a driver."""

    def __init__(self, device=0, *, plain=False, max_cached_bytes=0):
        self._native = _native.PinnedPool(device, plain, max_cached_bytes)

    def stats(self):
        return self._native.stats()

    def empty(self, shape, dtype=np.float32, *, tag="python"):
        """A NumPy array in a pinned block: no copy, the block returns to the pool when the array
        (and every view of it) is gone."""
        shape, dtype, nbytes = _layout(shape, dtype)
        block = _native.PinnedBlock(self._native, max(nbytes, 1), tag)
        return np.frombuffer(block, dtype=dtype, count=math.prod(shape)).reshape(shape)


_default_pool = None
_pool_lock = threading.Lock()


def default_pinned_pool():
    """The process's pinned pool (device 0's context; portable memory: usable by every device)."""
    global _default_pool
    with _pool_lock:
        if _default_pool is None:
            _default_pool = PinnedPool()
        return _default_pool


def pinned_empty(shape, dtype=np.float32, *, pool=None):
    """An uninitialised NumPy array in pinned memory (see :meth:`PinnedPool.empty`)."""
    return (pool or default_pinned_pool()).empty(shape, dtype)


def pinned_array(array, *, pool=None):
    """A pinned copy of ``array``: what asynchronous copies need."""
    array = np.asarray(array)
    out = pinned_empty(array.shape, array.dtype, pool=pool)
    out[...] = array
    return out


def pool_stats(device=0):
    """The device pool's bytes in use, peak and reserved, and its counts."""
    return _native.pool_stats(device)
