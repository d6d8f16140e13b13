"""kiln.DeviceLibrary and compile(libraries=...): a kernel compiled to LTO-IR and linked with a
library (from source, and prebuilt LTO-IR from `kiln compile --lto`) through the cache, with the real
NVRTC and nvJitLink (both run without a GPU); link errors name the symbol; on a GPU the linked
kernel computes with the library's function."""

import os
import subprocess

import numpy as np
import pytest

import kiln

LIBRARY = 'extern "C" __device__ float scale_add(float a, float x, float y) { return a * x + y; }\n'
HEADER = '#pragma once\nextern "C" __device__ float scale_add(float a, float x, float y);\n'
CALLER = '''#include "scale_add.cuh"
extern "C" __global__ void linked_saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = scale_add(a, x[i], y[i]);
}
'''


def library(source=LIBRARY):
    return kiln.DeviceLibrary.from_source(source, name="scale_add.cu", headers={"scale_add.cuh": HEADER})


def test_a_kernel_links_with_a_library_and_the_link_is_cached(cache):
    lib = library()
    image = kiln.compile(CALLER, libraries=[lib], target="sm_90", cache=cache)
    assert image.target == kiln.Target("cubin", 90)
    assert image.data[:4] == b"\x7fELF"
    again = kiln.compile(CALLER, libraries=[lib], target="sm_90", cache=cache)
    assert again.origin == "memory" and again.key == image.key
    # Another library's content is another link: another key.
    other = kiln.compile(CALLER, libraries=[library(LIBRARY.replace("a * x + y", "a * x - y"))], target="sm_90",
                         cache=cache)
    assert other.key != image.key
    with pytest.raises(TypeError, match="DeviceLibrary"):
        kiln.compile(CALLER, libraries=["scale_add"], target="sm_90", cache=cache)


def test_a_prebuilt_ltoir_library_links_into_its_own_architecture(cache, tmp_path):
    source = tmp_path / "scale_add.cu"
    source.write_text(LIBRARY)
    out = tmp_path / "scale_add.ltoir"
    subprocess.run([os.environ["KILN_CLI"], "compile", str(source), "--lto", "--arch", "sm_90", "-o", str(out)],
                   check=True, capture_output=True, env=dict(os.environ, KILN_CACHE_DIR=str(tmp_path / "cli-cache")))
    lib = kiln.DeviceLibrary.from_ltoir(out.read_bytes(), 90, name="scale_add.ltoir", headers={"scale_add.cuh": HEADER})
    assert kiln.compile(CALLER, libraries=[lib], target="sm_90", cache=cache).data[:4] == b"\x7fELF"
    with pytest.raises(kiln.InvalidArgumentError):
        kiln.compile(CALLER, libraries=[lib], target="sm_80", cache=cache)


def test_an_undefined_symbol_is_a_link_error_naming_it(cache):
    lonely = 'extern "C" __device__ float nobody_defines_this(float x);\n' \
             'extern "C" __global__ void lonely(float* y) { y[0] = nobody_defines_this(y[0]); }\n'
    with pytest.raises(kiln.LinkError) as e:
        kiln.compile(lonely, libraries=[library()], target="sm_90", cache=cache)
    assert "nobody_defines_this" in str(e.value)
    assert any(d.code == "undefined_symbol" for d in e.value.diagnostics), e.value.diagnostics


@pytest.mark.gpu
def test_the_linked_kernel_computes_with_the_library(cache):
    image = kiln.compile(CALLER, libraries=[library()], cache=cache)
    n = 4096
    x, y = kiln.to_device(np.full(n, 2, np.float32)), kiln.to_device(np.ones(n, np.float32))
    image.kernel("linked_saxpy")(n // 256, 256, (np.float32(3.0), x, y, np.int32(n)))
    kiln.default_stream().synchronize()
    assert (y.to_numpy() == 7).all()
