"""kiln's errors as Python exceptions.

Every error kiln raises is a :class:`kiln.Error` carrying what kiln knows: the ``name`` of the code
(``CUDA_ERROR_ILLEGAL_ADDRESS``), its ``domain`` and number, the ``meaning`` of the code, a ``hint``
(what to do), the failing ``call``, and ``sticky`` (the CUDA context is unusable: only a new process
recovers). ``str(error)`` is the whole story, as kiln's C++ and Go APIs tell it.
"""

import builtins

from . import _native

DOMAINS = {1: "driver", 2: "nvrtc", 3: "nvml", 4: "kiln", 5: "nvjitlink"}
_DOMAIN_NUMBERS = {v: k for k, v in DOMAINS.items()}


class Error(Exception):
    """An error of the CUDA driver, NVRTC, NVML or kiln itself, explained."""

    def __init__(self, message, *, domain="kiln", code=0, name="", hint="", sticky=False, call="",
                 meaning=None):
        super().__init__(message)
        self.message = message
        self.domain = domain
        self.code = code
        self.name = name
        self.hint = hint
        self.sticky = sticky
        self.call = call
        if meaning is None:
            entry = _native._lookup(_DOMAIN_NUMBERS.get(domain, 4), code)
            meaning = entry[4] if entry else ""
        self.meaning = meaning

    def __repr__(self):
        return f"{type(self).__name__}({self.name or self.domain + ':' + str(self.code)!s}: {self.message!r})"


class CompileError(Error):
    """NVRTC rejected the program; ``diagnostics`` lists where and why (:class:`kiln.Diagnostic`)."""

    def __init__(self, message, *, diagnostics=(), **kwargs):
        super().__init__(message, **kwargs)
        self.diagnostics = list(diagnostics)


class OutOfMemoryError(Error, MemoryError):
    """An allocation the device could not hold: ``requested``, ``free`` and ``total`` in bytes (free
    and total as the device reported them right after the failure; None where unknown)."""

    def __init__(self, message, *, requested=None, free=None, total=None, **kwargs):
        super().__init__(message, **kwargs)
        self.requested = requested
        self.free = free
        self.total = total


class IllegalAddressError(Error):
    """A kernel read or wrote memory it does not own. Sticky: this process's context on that device
    is lost, and every later call on it fails; only a new process recovers."""


class DriverNotFoundError(Error):
    """No CUDA driver (libcuda.so.1) on this machine: compiling still works, running does not."""


class NvrtcNotFoundError(Error):
    """NVRTC (libnvrtc.so) was not found: set KILN_NVRTC_PATH or CUDA_HOME."""


class InvalidArgumentError(Error, ValueError):
    """A call was refused before anything ran: the message names the argument and why."""


class TimeoutError(Error, builtins.TimeoutError):
    """A wait ran past its deadline; the work it waited for may still be running."""


class CancelledError(Error):
    """A wait was cancelled; the work it waited for may still be running."""


class LinkError(Error):
    """nvJitLink refused a link (an undefined or duplicate symbol, a bad input), or is missing;
    ``diagnostics`` has one entry per problem (file: the input; code: ``undefined_symbol``,
    ``duplicate_symbol`` or ``other``)."""

    def __init__(self, message, *, diagnostics=(), **kwargs):
        super().__init__(message, **kwargs)
        self.diagnostics = list(diagnostics)


class VersionMismatchError(Error):
    """Two of the CUDA libraries found do not go together (driver, NVRTC, headers)."""


_KILN_CODES = {1: DriverNotFoundError, 2: NvrtcNotFoundError, 5: VersionMismatchError, 6: InvalidArgumentError,
               7: VersionMismatchError, 8: CompileError, 10: TimeoutError, 13: CancelledError,
               14: LinkError, 15: LinkError}
_DRIVER_CODES = {2: OutOfMemoryError, 700: IllegalAddressError}


def _class_of(domain, code):
    if domain == "kiln":
        return _KILN_CODES.get(code, Error)
    if domain == "driver":
        return _DRIVER_CODES.get(code, Error)
    if domain == "nvrtc" and code == 6:  # NVRTC_ERROR_COMPILATION
        return CompileError
    if domain == "nvjitlink":
        return LinkError
    return Error


def _from_native(domain, code, sticky, name, message, hint, call, extra):
    """Called by kiln._native with a kiln_error's fields: the exception to raise."""
    from .compiling import Diagnostic  # late: compiling imports this module

    d = DOMAINS.get(domain, "kiln")
    cls = _class_of(d, code)
    kwargs = dict(domain=d, code=code, name=name, hint=hint, sticky=sticky, call=call)
    if cls in (CompileError, LinkError):
        kwargs["diagnostics"] = [Diagnostic._from_native(x) for x in extra.get("diagnostics", ())]
    elif cls is OutOfMemoryError:
        kwargs.update({k: extra[k] for k in ("requested", "free", "total") if k in extra})
    return cls(message, **kwargs)


_native._set_error_factory(_from_native)


class Explanation:
    """What a code means and what to do (``kiln.explain``)."""

    def __init__(self, domain, code, sticky, name, meaning, hint):
        self.domain, self.code, self.sticky, self.name, self.meaning, self.hint = (
            DOMAINS.get(domain, "kiln"), code, sticky, name, meaning, hint)

    def __repr__(self):
        return f"Explanation({self.name}, {self.domain} error {self.code}, sticky={self.sticky})"

    def __str__(self):
        sticky = "yes: the CUDA context is unusable; only a new process recovers" if self.sticky else "no"
        return (f"{self.name} ({self.domain} error {self.code})\n  meaning: {self.meaning}\n"
                f"  hint:    {self.hint}\n  sticky:  {sticky}")


def explain(code):
    """What an error code means: a name (``"CUDA_ERROR_ILLEGAL_ADDRESS"``), a number (``700``: every
    domain that has it), ``"nvrtc:6"``, or a :class:`kiln.Error`. Returns a list of
    :class:`Explanation`; raises KeyError for a code no table knows."""
    if isinstance(code, Error):
        code = f"{code.domain}:{code.code}"
    found = [Explanation(*entry) for entry in _native._find(str(code))]
    if not found:
        raise KeyError(f"no CUDA, NVRTC, NVML or kiln error is called or numbered {code!r}")
    return found
