"""Compiling CUDA C++ with NVRTC through kiln's kernel cache.

The default cache is the one kiln's CLI and C++ API use: a memory tier in this process and the disk
tier in ``$KILN_CACHE_DIR`` (else ``~/.cache/kiln``), shared by processes, its entries verified on
every read, one compile per key however many threads or processes ask.
"""

import dataclasses
import os
import threading

from . import _native

_SEVERITIES = ("remark", "warning", "error", "fatal")


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """One message of NVRTC: where (file, 1-based line and column; 0 when unknown) and what."""

    file: str
    line: int
    column: int
    severity: str
    code: str
    message: str
    source_line: str
    formatted: str

    def __str__(self):
        return self.formatted

    @classmethod
    def _from_native(cls, d):
        return cls(d["file"], d["line"], d["column"], _SEVERITIES[d["severity"]], d["code"], d["message"],
                   d["source_line"], d["formatted"])


@dataclasses.dataclass(frozen=True)
class Target:
    """What to compile for: machine code (``cubin``) for one architecture, or ``ptx``."""

    kind: str  # "cubin" or "ptx"
    arch: int  # 90 for sm_90 / compute_90

    def __str__(self):
        return f"{'sm' if self.kind == 'cubin' else 'compute'}_{self.arch}"

    @classmethod
    def parse(cls, text):
        """``"sm_90"``, ``"compute_90"`` (PTX), ``"90"``, ``"9.0"``."""
        kind, arch = _native.target_parse(str(text))
        return cls("ptx" if kind == 1 else "cubin", arch)

    @classmethod
    def for_device(cls, device=0):
        """The best target for a device: its machine code when NVRTC has it, else PTX."""
        kind, arch = _native.target_for_device(device)
        return cls("ptx" if kind == 1 else "cubin", arch)


_ORIGINS = ("compiled", "memory", "disk")


class Cache:
    """A kernel cache. ``directory=None``: ``$KILN_CACHE_DIR`` or ``~/.cache/kiln``;
    ``use_disk=False``: the memory tier only."""

    def __init__(self, directory=None, *, use_disk=True, memory_bytes=0, disk_max_bytes=0,
                 precompiled_headers=False):
        self._native = _native.Cache(memory_bytes, use_disk, os.fspath(directory) if directory else "",
                                     disk_max_bytes, precompiled_headers)

    def stats(self):
        """Hits and misses of each tier, compiles, time spent and saved (a dict)."""
        return self._native.stats()


_default_cache = None
_default_lock = threading.Lock()


def default_cache():
    """The process's cache over the shared disk tier (made on first use)."""
    global _default_cache
    with _default_lock:
        if _default_cache is None:
            _default_cache = Cache()
        return _default_cache


def cache_stats():
    """The default cache's stats."""
    return default_cache().stats()


class Image:
    """A compiled program (CUBIN or PTX) and what the compile said. Load it with :meth:`load`."""

    def __init__(self, native, name_expressions):
        self._native = native
        self.name_expressions = tuple(name_expressions)

    @property
    def key(self):
        """The cache key: 64 hex digits, the name of its disk cache entry."""
        return self._native.key

    @property
    def target(self):
        kind, arch = self._native.target
        return Target("ptx" if kind == 1 else "cubin", arch)

    @property
    def origin(self):
        """Where it came from: ``"compiled"`` now, or a ``"memory"`` or ``"disk"`` cache hit."""
        return _ORIGINS[self._native.origin]

    @property
    def data(self):
        """The CUBIN bytes or the PTX text (as bytes)."""
        return self._native.data

    @property
    def compile_ms(self):
        """What the compile cost when it ran (also for a cache hit: what the hit saved)."""
        return self._native.compile_ns / 1e6

    @property
    def log(self):
        return self._native.log

    @property
    def warnings(self):
        """NVRTC's warnings and remarks for an accepted program (:class:`Diagnostic`)."""
        return [Diagnostic._from_native(d) for d in self._native.diagnostics()]

    def lowered_name(self, name_expression):
        """The mangled name of a listed name expression (``"scale<float>"``)."""
        return self._native.lowered_name(name_expression)

    def load(self, device=0):
        """Loads the image on a device: a :class:`kiln.Module`."""
        from .launching import Module

        return Module(self, device)

    def kernel(self, name, device=0):
        """Shorthand for ``image.load(device).kernel(name)``."""
        return self.load(device).kernel(name)


def _strings(values, what):
    if values is None:
        return []
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of strings, not one string")
    return [str(v) for v in values]


def _program(source, name, headers, include_dirs, name_expressions, std, defines, line_info, fast_math, max_registers,
             relocatable_device_code, minimal, options):
    return {
        "source": source, "name": name, "standard": std or "",
        "headers": [(str(k), str(v)) for k, v in (headers or {}).items()],
        "include_dirs": [os.fspath(d) for d in (include_dirs or [])],
        "name_expressions": _strings(name_expressions, "name_expressions"), "defines": _strings(defines, "defines"),
        "extra_options": _strings(options, "options"), "line_info": line_info, "fast_math": fast_math,
        "max_registers": max_registers, "relocatable_device_code": relocatable_device_code, "minimal": minimal,
    }


class DeviceLibrary:
    """Device functions compiled once to LTO-IR and linked (nvJitLink, ``-lto``: they still inline)
    into the kernels that call them, so a kernel compiles only its own lines: pass it to
    :func:`compile` as ``libraries=[...]``. ``headers`` ({include name: source}, the declarations
    callers include) are added to every kernel linked with it."""

    def __init__(self, native, name):
        self._native = native
        self.name = name

    @classmethod
    def from_source(cls, source, *, name="library.cu", headers=None, options=None, defines=None, std=None,
                    fast_math=False, include_dirs=None):
        """Compiled at first use for each architecture, through the cache the linking compile uses."""
        program = _program(source, name, headers, include_dirs, None, std, defines, False, fast_math, 0, False, False,
                           options)
        return cls(_native.library_from_source(program, program["headers"]), name)

    @classmethod
    def from_ltoir(cls, ltoir, arch, *, name="library.ltoir", headers=None):
        """Prebuilt LTO-IR for ``sm_<arch>`` (``kiln compile --lto``): it links into that
        architecture only."""
        pairs = [(str(k), str(v)) for k, v in (headers or {}).items()]
        return cls(_native.library_from_ltoir(name, int(arch), bytes(ltoir), pairs), name)

    def __repr__(self):
        return f"DeviceLibrary({self.name!r})"


def compile(source, *, headers=None, include_dirs=None, options=None, name_expressions=None, defines=None,
            target=None, device=0, name="kernel.cu", std=None, line_info=False, fast_math=False, max_registers=0,
            relocatable_device_code=False, minimal=False, cache=None, libraries=None):
    """Compiles CUDA C++ source through the kernel cache; returns an :class:`Image`.

    ``headers``: {include name: source}; ``options``: NVRTC options passed verbatim;
    ``name_expressions``: template instances to instantiate (``"scale<float>"``), whose kernels
    :meth:`Module.kernel` finds by the same text; ``target``: ``"sm_90"``, ``"compute_90"`` or a
    :class:`Target`, else the best for ``device`` (which needs a driver); ``libraries``:
    :class:`DeviceLibrary` objects to link with (the source is compiled to LTO-IR, the link is
    cached too, and the image's key changes with any library's content). Raises
    :class:`kiln.CompileError` with the diagnostics when NVRTC rejects the program, and
    :class:`kiln.LinkError` (diagnostics: one per undefined or duplicate symbol) when nvJitLink
    rejects the link. The GIL is released while NVRTC and nvJitLink run.
    """
    if target is None:
        target = Target.for_device(device)
    elif not isinstance(target, Target):
        target = Target.parse(target)
    program = _program(source, name, headers, include_dirs, name_expressions, std, defines, line_info, fast_math,
                       max_registers, relocatable_device_code, minimal, options)
    libraries = list(libraries or [])
    for library in libraries:
        if not isinstance(library, DeviceLibrary):
            raise TypeError(f"libraries must hold kiln.DeviceLibrary objects, not {type(library).__name__}")
    native = _native.compile((cache or default_cache())._native, program, [l._native for l in libraries],
                             1 if target.kind == "ptx" else 0, target.arch)
    return Image(native, program["name_expressions"])
