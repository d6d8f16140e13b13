"""Compiling through the kernel cache with the real NVRTC: images, tiers, diagnostics, options."""

import threading
import uuid

import pytest

import kiln
from conftest import counted_during

SAXPY = r'''
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
'''


def test_compiles_cubin_then_hits_memory_then_disk(tmp_path):
    first = kiln.Cache(tmp_path)
    image = kiln.compile(SAXPY, target="sm_90", cache=first)
    assert image.data[:4] == b"\x7fELF"
    assert image.target == kiln.Target("cubin", 90)
    assert image.origin == "compiled"
    assert len(image.key) == 64 and int(image.key, 16) >= 0
    entries = list((tmp_path / "entries" / image.key[:2]).glob(image.key + "*"))
    assert len(entries) == 1, "the disk tier holds the entry under its key"

    again = kiln.compile(SAXPY, target="sm_90", cache=first)
    assert again.origin == "memory" and again.key == image.key and again.data == image.data

    fresh = kiln.Cache(tmp_path)  # a new memory tier over the same folder: what a new process sees
    from_disk = kiln.compile(SAXPY, target="sm_90", cache=fresh)
    assert from_disk.origin == "disk" and from_disk.data == image.data
    stats = first.stats()
    assert stats["compiles"] == 1 and stats["memory_hits"] == 1
    assert fresh.stats()["disk_hits"] == 1


def test_ptx_target(cache):
    image = kiln.compile(SAXPY, target="compute_80", cache=cache)
    assert image.target == kiln.Target("ptx", 80)
    assert b".entry saxpy" in image.data
    assert str(image.target) == "compute_80"


def test_headers_and_name_expressions(cache):
    header = "template <typename T> __device__ T twice(T v) { return v + v; }\n"
    source = r'''
#include "twice.cuh"
template <typename T> __global__ void scale(T* p, int n) { int i = threadIdx.x; if (i < n) p[i] = twice(p[i]); }
'''
    image = kiln.compile(source, headers={"twice.cuh": header}, name_expressions=["scale<float>", "scale<int>"],
                         target="sm_90", cache=cache)
    lowered = image.lowered_name("scale<float>")
    assert lowered.startswith("_Z") and lowered != image.lowered_name("scale<int>")
    with pytest.raises(kiln.InvalidArgumentError, match="scale<double>"):
        image.lowered_name("scale<double>")


def test_compile_error_carries_diagnostics(cache):
    source = "extern \"C\" __global__ void k(int* p) {\n  int x = 1;\n  p[0] = undeclared_thing;\n}\n"
    with pytest.raises(kiln.CompileError) as caught:
        kiln.compile(source, name="bad.cu", target="sm_90", cache=cache)
    e = caught.value
    assert e.domain == "kiln" and e.name == "KILN_ERROR_COMPILE_FAILED"
    assert e.meaning
    errors = [d for d in e.diagnostics if d.severity == "error"]
    assert errors, e.diagnostics
    d = errors[0]
    assert (d.file, d.line) == ("bad.cu", 3)
    assert d.column > 0 and "undeclared_thing" in d.message
    assert "p[0] = undeclared_thing;" in d.source_line
    assert "bad.cu:3:" in str(e) and str(d).startswith("bad.cu:3:")
    assert cache.stats()["compile_failures"] == 1


def test_warnings_of_an_accepted_program(cache):
    source = 'extern "C" __global__ void k(int* p) { int unused = 3; p[0] = 1; }\n'
    image = kiln.compile(source, name="warn.cu", target="sm_90", cache=cache)
    warnings = image.warnings
    assert any(w.severity == "warning" and w.line == 1 and "unused" in w.message for w in warnings), warnings


def test_every_option_is_in_the_key(cache):
    keys = {
        kiln.compile(SAXPY, target="sm_90", cache=cache).key,
        kiln.compile(SAXPY, target="sm_80", cache=cache).key,
        kiln.compile(SAXPY, target="sm_90", defines=["FOO=1"], cache=cache).key,
        kiln.compile(SAXPY, target="sm_90", options=["-lineinfo"], cache=cache).key,
        kiln.compile(SAXPY, target="sm_90", fast_math=True, cache=cache).key,
        kiln.compile(SAXPY, target="sm_90", std="c++17", cache=cache).key,
        kiln.compile(SAXPY + "\n", target="sm_90", cache=cache).key,
    }
    assert len(keys) == 7


def test_defines_reach_the_program(cache):
    source = "#ifndef NEED\n#error NEED is not defined\n#endif\nextern \"C\" __global__ void k() {}\n"
    with pytest.raises(kiln.CompileError, match="NEED is not defined"):
        kiln.compile(source, target="sm_90", cache=cache)
    assert kiln.compile(source, target="sm_90", defines=["NEED"], cache=cache).origin == "compiled"


def test_an_invalid_nvrtc_option_is_an_error(cache):
    with pytest.raises(kiln.Error) as caught:
        kiln.compile(SAXPY, target="sm_90", options=["--no-such-option"], cache=cache)
    assert "--no-such-option" in str(caught.value)


def test_bad_arguments_are_refused_before_nvrtc(cache):
    with pytest.raises(TypeError, match="list of strings"):
        kiln.compile(SAXPY, target="sm_90", options="-lineinfo", cache=cache)
    with pytest.raises(kiln.InvalidArgumentError):
        kiln.compile(SAXPY, target="sm_nonsense", cache=cache)


def test_targets_parse():
    assert kiln.Target.parse("sm_90") == kiln.Target("cubin", 90)
    assert kiln.Target.parse("compute_80") == kiln.Target("ptx", 80)
    assert kiln.Target.parse("8.6") == kiln.Target("cubin", 86)
    with pytest.raises(kiln.InvalidArgumentError) as caught:
        kiln.Target.parse("gpu")
    assert caught.value.name == "KILN_ERROR_INVALID_ARGUMENT" and caught.value.meaning


def test_the_gil_is_released_while_nvrtc_compiles(cache):
    # A cache miss (a fresh source) takes NVRTC tens of milliseconds at least; a thread counting in
    # Python meanwhile only advances if the compile let go of the GIL.
    source = SAXPY + f"// {uuid.uuid4()}\n" + "\n".join(
        f'extern "C" __global__ void k{i}(float* p) {{ p[{i}] = sinf(p[{i}]) * {i}.0f; }}' for i in range(200))
    image, during = counted_during(lambda: kiln.compile(source, target="sm_90", cache=cache))
    assert image.origin == "compiled"
    assert during > 1000, f"the counting thread advanced {during} times during the compile"


def test_default_cache_uses_kiln_cache_dir(tmp_path, monkeypatch):
    image = kiln.compile(SAXPY + "// default cache\n", target="sm_90")
    assert image.origin in ("compiled", "memory", "disk")
    assert kiln.cache_stats()["compiles"] + kiln.cache_stats()["memory_hits"] + kiln.cache_stats()["disk_hits"] >= 1


def test_without_a_driver_the_default_target_says_what_to_do(cache):
    try:
        kiln.device_count()
        pytest.skip("a driver is here: the default target is the device's")
    except kiln.DriverNotFoundError:
        pass
    with pytest.raises(kiln.DriverNotFoundError) as caught:
        kiln.compile(SAXPY, cache=cache)
    assert caught.value.hint


def test_threads_compiling_one_program_share_one_compile(cache):
    source = SAXPY + f"// {uuid.uuid4()}\n"
    images, errors = [], []
    start = threading.Barrier(4)

    def work():
        try:
            start.wait()
            images.append(kiln.compile(source, target="sm_90", cache=cache))
        except Exception as e:  # reported below: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({i.key for i in images}) == 1 and len({i.data for i in images}) == 1
    stats = cache.stats()
    assert stats["compiles"] == 1
    assert stats["shared_waits"] + stats["memory_hits"] == 3


def test_a_new_process_gets_a_disk_hit(tmp_path):
    import subprocess
    import sys

    child = ("import kiln, sys; i = kiln.compile(sys.argv[1], target='sm_90', cache=kiln.Cache(sys.argv[2])); "
             "print(i.origin, i.key)")
    runs = [subprocess.run([sys.executable, "-c", child, SAXPY, str(tmp_path)], capture_output=True, text=True)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    (first, key1), (second, key2) = (r.stdout.split() for r in runs)
    assert (first, second) == ("compiled", "disk") and key1 == key2
