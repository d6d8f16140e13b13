#!/usr/bin/env python3
"""kiln from Python beside its peers, in one process on one GPU: empty-kernel launches (100k async)
through kiln, CuPy's RawKernel, cuda.core's launch, the driver's cuLaunchKernel called from Python
(cuda.bindings) and from C++ (libkiln_go_peers.so, no Python in the loop); a 4-argument launch; and
a disk-cache hit in a new process to a launchable kernel, kiln against CuPy, with the part that is
the driver's context start. Prints a table and the ratios the issue's goals name.

Usage: PYTHONPATH=<build>/python bench/python/bench_python.py [--build <build>] [--reps 5]
"""

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import kiln

SOURCE = r'''
extern "C" __global__ void empty() {}
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
'''
N = 100_000


def per_launch(loop, sync):
    """µs a launch: N launches, then the sync, over N."""
    loop(1000)
    sync()
    t = time.perf_counter()
    loop(N)
    sync()
    return (time.perf_counter() - t) / N * 1e6


def kiln_methods():
    image = kiln.compile(SOURCE)
    module = image.load()
    empty, saxpy = module.kernel("empty"), module.kernel("saxpy")
    s = kiln.Stream()
    n = 1 << 20
    x, y = kiln.zeros(n, np.float32, stream=s), kiln.zeros(n, np.float32, stream=s)
    blocks = (n + 255) // 256

    def empty_loop(count):
        for _ in range(count):
            empty(1, 1, (), stream=s)

    def saxpy_loop(count):
        for _ in range(count):
            saxpy(blocks, 256, (2.0, x, y, n), stream=s)

    def default_loop(count):
        for _ in range(count):
            empty(1, 1)

    ds = kiln.default_stream()
    return image, {
        "kiln empty launch": (empty_loop, s.synchronize),
        "kiln empty launch, default stream, no args tuple": (default_loop, ds.synchronize),
        "kiln saxpy 1M (4 args: float, 2 kiln buffers, int)": (saxpy_loop, s.synchronize),
    }


def cupy_methods():
    import cupy as cp

    m = cp.RawModule(code=SOURCE)
    empty, saxpy = m.get_function("empty"), m.get_function("saxpy")
    s = cp.cuda.Stream(non_blocking=True)
    n = 1 << 20
    x, y = cp.zeros(n, cp.float32), cp.zeros(n, cp.float32)
    a, nn = np.float32(2), np.int32(n)
    blocks = ((n + 255) // 256,)

    def empty_loop(count):
        with s:
            for _ in range(count):
                empty((1,), (1,), ())

    def saxpy_loop(count):
        with s:
            for _ in range(count):
                saxpy(blocks, (256,), (a, x, y, nn))

    return {"cupy RawKernel empty launch": (empty_loop, s.synchronize),
            "cupy saxpy 1M (4 args)": (saxpy_loop, s.synchronize)}


def cuda_core_methods():
    from cuda.core import Device, LaunchConfig, Program, ProgramOptions, launch

    dev = Device()
    dev.set_current()
    st = dev.create_stream()
    prog = Program(SOURCE, code_type="c++", options=ProgramOptions(arch=f"sm_{dev.arch}"))
    k = prog.compile("cubin").get_kernel("empty")
    cfg = LaunchConfig(grid=1, block=1)

    def loop(count):
        for _ in range(count):
            launch(st, cfg, k)

    return {"cuda.core launch": (loop, st.sync)}


def cuda_bindings_methods(image):
    from cuda.bindings import driver

    def ok(result):
        err = result[0] if isinstance(result, tuple) else result
        if err != driver.CUresult.CUDA_SUCCESS:
            raise RuntimeError(f"cuda.bindings: {err}")
        return result[1] if isinstance(result, tuple) and len(result) == 2 else result

    ok(driver.cuInit(0))
    dev = ok(driver.cuDeviceGet(0))
    ctx = ok(driver.cuDevicePrimaryCtxRetain(dev))
    ok(driver.cuCtxSetCurrent(ctx))
    mod = ok(driver.cuModuleLoadData(image.data))
    fn = ok(driver.cuModuleGetFunction(mod, b"empty"))
    stream = ok(driver.cuStreamCreate(1))  # CU_STREAM_NON_BLOCKING
    launch = driver.cuLaunchKernel

    def loop(count):
        for _ in range(count):
            launch(fn, 1, 1, 1, 1, 1, 1, 0, stream, 0, 0)

    return {"cuda.bindings cuLaunchKernel from Python": (loop, lambda: ok(driver.cuStreamSynchronize(stream)))}


def raw_cpp(build):
    lib = ctypes.CDLL(os.path.join(build, "lib", "libkiln_go_peers.so"))
    lib.kiln_peers_launch_loop_raw.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.POINTER(ctypes.c_double)]
    lib.kiln_peers_last_error.restype = ctypes.c_char_p

    def measure():
        seconds = ctypes.c_double()
        if lib.kiln_peers_launch_loop_raw(0, N, ctypes.byref(seconds)) != 0:
            raise RuntimeError(lib.kiln_peers_last_error().decode())
        return seconds.value / N * 1e6

    return measure


CHILD = r'''
import sys, time
t0 = time.perf_counter()
which = sys.argv[1]
SOURCE = sys.argv[2]
if which == "kiln":
    import kiln
    t1 = time.perf_counter()
    kiln.default_stream(0)  # the driver and the primary context
    t2 = time.perf_counter()
    image = kiln.compile(SOURCE)
    k = image.kernel("saxpy")
    kiln.default_stream(0).synchronize()
    t3 = time.perf_counter()
    origin = image.origin
else:
    import cupy as cp
    t1 = time.perf_counter()
    cp.cuda.Device(0).use(); cp.cuda.runtime.free(0); cp.cuda.Device().synchronize()
    t2 = time.perf_counter()
    f = cp.RawModule(code=SOURCE).get_function("saxpy")
    cp.cuda.Device().synchronize()
    t3 = time.perf_counter()
    origin = "-"
print(f"{(t1 - t0) * 1e3:.3f} {(t2 - t1) * 1e3:.3f} {(t3 - t2) * 1e3:.3f} {origin}")
'''


def new_process(which, env, reps):
    """(import, context, kernel) ms medians over `reps` warm runs, after one cold run, and the
    whole process wall time."""
    def once():
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, which, SOURCE], env=env, capture_output=True, text=True)
        wall = (time.perf_counter() - t) * 1e3
        if out.returncode != 0:
            raise RuntimeError(f"{which} child failed: {out.stderr[-2000:]}")
        parts = out.stdout.split()
        return [float(p) for p in parts[:3]] + [wall], parts[3]

    once()  # cold: fills the disk cache
    runs = [once() for _ in range(reps)]
    origins = {o for _, o in runs}
    medians = [statistics.median(r[0][i] for r in runs) for i in range(4)]
    return medians, origins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("KILN_BUILD_DIR", "build"))
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    card = kiln.devices()[0]
    print(f"== kiln Python bench on {card.name}, kiln {kiln.version()}, Python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d')}")

    image, methods = kiln_methods()
    for name, make in (("cupy", cupy_methods), ("cuda.core", cuda_core_methods),
                       ("cuda.bindings", lambda: cuda_bindings_methods(image))):
        try:
            methods.update(make())
        except Exception as e:  # a peer missing is reported, not fatal
            print(f"{name}: not measured: {type(e).__name__}: {e}")
    measures = {name: (lambda loop=loop, sync=sync: per_launch(loop, sync)) for name, (loop, sync) in methods.items()}
    try:
        measures["raw cuLaunchKernel from C++ (no Python)"] = raw_cpp(args.build)
    except Exception as e:
        print(f"raw C++ loop: not measured: {type(e).__name__}: {e}")

    # Interleaved repetitions: each method once per round, so drift hits all alike.
    results = {name: [] for name in measures}
    for _ in range(args.reps):
        for name, measure in measures.items():
            results[name].append(measure())
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"{'launch (100k async, median of ' + str(args.reps) + ')':60s} {'µs/launch':>10s}   runs")
    for name, v in results.items():
        print(f"{name:60s} {med[name]:10.3f}   " + " ".join(f"{x:.3f}" for x in v))

    k = med["kiln empty launch"]
    ratios = []
    for peer in ("cupy RawKernel empty launch", "cuda.core launch", "cuda.bindings cuLaunchKernel from Python"):
        if peer in med:
            ratios.append(f"kiln / {peer}: {k / med[peer]:.3f}")
    if "cupy saxpy 1M (4 args)" in med:
        kiln_saxpy = med["kiln saxpy 1M (4 args: float, 2 kiln buffers, int)"]
        ratios.append(f"kiln saxpy / cupy saxpy: {kiln_saxpy / med['cupy saxpy 1M (4 args)']:.3f}")
    raw = med.get("raw cuLaunchKernel from C++ (no Python)")
    if raw:
        ratios.append(f"kiln - raw C++: {k - raw:+.3f} µs (goal <= +0.5 µs: {'met' if k - raw <= 0.5 else 'missed'})")
    for r in ratios:
        print(r)

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, KILN_CACHE_DIR=os.path.join(cache, "kiln"), CUPY_CACHE_DIR=os.path.join(cache, "cupy"))
        print(f"new process, disk-cache hit to a launchable kernel (median of {args.reps}, ms): "
              "import | driver + context | compile hit + load | whole process")
        figures = {}
        for which in ("kiln", "cupy"):
            try:
                (imp, ctx, kern, wall), origins = new_process(which, env, args.reps)
            except Exception as e:
                print(f"{which}: not measured: {e}")
                continue
            figures[which] = ctx + kern
            note = f" (origin {','.join(sorted(origins))})" if which == "kiln" else ""
            print(f"  {which:5s} {imp:8.1f} | {ctx:8.1f} | {kern:8.2f} | {wall:8.1f}{note}")
        if len(figures) == 2:
            print(f"kiln / cupy, context + kernel (what the peers' script times after import): "
                  f"{figures['kiln'] / figures['cupy']:.3f}")


if __name__ == "__main__":
    main()
