"""Modules and kernels. A :class:`Kernel` is called like CuPy's RawKernel::

    kernel(grid, block, (a, x, y, n), stream=None, shared_mem=0)

``grid`` and ``block`` are ints or tuples of 1 to 3 ints. Each argument fills the kernel's next
parameter: a kiln buffer, any array with ``__cuda_array_interface__`` or ``__dlpack__`` (CuPy,
PyTorch, JAX, Numba: no copy is made), an int or a float (sized by the parameter: 4 bytes take an
int32/uint32 or a float, 8 an int64/uint64 or a double), a NumPy scalar or bytes of the parameter's
exact size. The count and every size are checked before anything is launched. The launch is
asynchronous on ``stream`` (a :class:`kiln.Stream`; None: kiln's default stream of the kernel's
device). To order a launch with another library's work, launch on its stream:
``kiln.borrow_stream(cupy_stream)`` or ``kiln.borrow_stream(torch.cuda.current_stream())``.
"""

from . import _native

Kernel = _native.Kernel


class Module:
    """An image loaded on a device. Its kernels keep its code loaded, so it may go first."""

    def __init__(self, image, device=0):
        self._native = _native.Module(image._native, device)
        self.device = device
        self.name_expressions = image.name_expressions

    def kernel(self, name):
        """A kernel by its name (``extern "C"``) or by a name expression the program listed."""
        return _native.Kernel(self._native, name)

    get_function = kernel  # CuPy's name
