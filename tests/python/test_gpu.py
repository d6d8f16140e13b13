"""The Python package on a GPU: launches with kiln, CuPy and PyTorch memory, argument checks, copies,
pinned and managed memory, waits, and the errors a GPU raises."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kiln
from conftest import counted_during, need

pytestmark = pytest.mark.gpu

SOURCE = r'''
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void empty() {}
struct Pair { int a; float b; double c; };
extern "C" __global__ void sizes(unsigned char c, short s, unsigned u, long long ll, double d, Pair p,
                                 unsigned long long* out) {
  out[0] = c; out[1] = s; out[2] = u; out[3] = ll; out[4] = (unsigned long long)d;
  out[5] = p.a; out[6] = (unsigned long long)p.b; out[7] = (unsigned long long)p.c;
}
extern "C" __global__ void spin(long long cycles) {
  long long start = clock64();
  while (clock64() - start < cycles) {}
}
template <typename T> __global__ void fill(T* p, T v, int n) { int i = threadIdx.x; if (i < n) p[i] = v; }
'''


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    cache = kiln.Cache(tmp_path_factory.mktemp("cache"))
    return kiln.compile(SOURCE, name_expressions=["fill<int>", "fill<double>"], cache=cache).load()


def test_saxpy_with_kiln_buffers(module):
    k = module.kernel("saxpy")
    assert k.parameter_sizes == [4, 8, 8, 4] and k.name == "saxpy" and k.device == 0
    n = 10_000
    x = np.random.default_rng(1).random(n, dtype=np.float32)
    y = np.random.default_rng(2).random(n, dtype=np.float32)
    dx, dy = kiln.to_device(x), kiln.to_device(y)
    k((n + 255) // 256, 256, (2.5, dx, dy, n))
    np.testing.assert_allclose(dy.to_numpy(), 2.5 * x + y, rtol=1e-6)


def test_scalars_take_the_parameter_sizes(module):
    out = kiln.zeros(8, np.uint64)
    pair = np.zeros((), dtype=np.dtype([("a", "<i4"), ("b", "<f4"), ("c", "<f8")], align=True))
    pair["a"], pair["b"], pair["c"] = 5, 6.0, 7.0
    module.kernel("sizes")(1, 1, (200, np.int16(-3), 4_000_000_000, -(2**40), 9.0, pair.tobytes(), out))
    got = out.to_numpy()
    assert list(got[[0, 2, 4, 5, 6, 7]]) == [200, 4_000_000_000, 9, 5, 6, 7]
    assert got[1].astype(np.int64) == -3 and got[3].astype(np.int64) == -(2**40)


def test_argument_errors_are_refused_before_launch(module):
    k = module.kernel("saxpy")
    y = kiln.zeros(4, np.float32)
    with pytest.raises(kiln.InvalidArgumentError, match=r"saxpy takes 4 arguments \(of 4, 8, 8, 4 bytes\); got 3"):
        k(1, 4, (1.0, y, y))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 3 .* does not fit in 4 bytes"):
        k(1, 4, (1.0, y, y, 2**33))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 1 .*host memory"):
        k(1, 4, (1.0, np.zeros(4, np.float32), y, 4))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 0 .*float64 of 8 bytes"):
        k(1, 4, (np.float64(1.0), y, y, 4))
    # (A float where a pointer is expected would pass as a double: parameters have sizes, not types.)
    with pytest.raises(kiln.InvalidArgumentError, match="argument 3 .*kiln buffer is a pointer"):
        k(1, 4, (1.0, y, y, y))  # a buffer into the 4-byte int
    with pytest.raises(kiln.InvalidArgumentError, match="cannot pass a object"):
        k(1, 4, (1.0, object(), y, 4))
    with pytest.raises(kiln.InvalidArgumentError, match="grid"):
        k(0, 4, (1.0, y, y, 4))
    with pytest.raises(kiln.InvalidArgumentError, match="block"):
        k(1, (1, 2, 3, 4), (1.0, y, y, 4))
    with pytest.raises(kiln.InvalidArgumentError, match="3 positional arguments given|1 positional"):
        k(1)
    with pytest.raises(kiln.InvalidArgumentError, match="unexpected keyword strem"):
        k(1, 4, (1.0, y, y, 4), strem=None)
    with pytest.raises(kiln.InvalidArgumentError, match="shared_mem"):
        k(1, 4, (1.0, y, y, 4), shared_mem=-1)
    with pytest.raises(kiln.InvalidArgumentError, match="stream must be a kiln.Stream"):
        k(1, 4, (1.0, y, y, 4), stream="s")
    with pytest.raises(kiln.InvalidArgumentError, match="args must be a tuple or a list"):
        k(1, 4, "abcd")
    with pytest.raises(kiln.InvalidArgumentError, match="argument 3 .*does not fit in 64 bits"):
        k(1, 4, (1.0, y, y, 2**70))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 3 .*does not fit in 64 bits"):
        k(1, 4, (1.0, y, y, -(2**70)))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 3 .*does not fit in 4 bytes"):
        k(1, 4, (1.0, y, y, 2**63))

    class NoData:  # an array interface without its pointer
        __cuda_array_interface__ = {"shape": (4,), "typestr": "<f4", "version": 3}

    with pytest.raises(kiln.InvalidArgumentError, match="argument 1 .*has no data"):
        k(1, 4, (1.0, NoData(), y, 4))
    out = kiln.zeros(8, np.uint64)
    sizes = module.kernel("sizes")  # (uchar, short, unsigned, long long, double, Pair (16 bytes), pointer)
    with pytest.raises(kiln.InvalidArgumentError, match="argument 1 .*a float fills a float"):
        sizes(1, 1, (200, 1.5, 4, 5, 9.0, bytes(16), out))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 5 .*an int cannot fill a parameter of this size"):
        sizes(1, 1, (200, 1, 4, 5, 9.0, 7, out))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 5 .*a bytes of 8 bytes"):
        sizes(1, 1, (200, 1, 4, 5, 9.0, bytes(8), out))
    with pytest.raises(kiln.InvalidArgumentError, match="argument 0 .*300 does not fit in 1 bytes"):
        sizes(1, 1, (300, 1, 4, 5, 9.0, bytes(16), out))
    closed = kiln.zeros(4, np.float32)
    closed.close()
    with pytest.raises(kiln.InvalidArgumentError, match="closed"):
        k(1, 4, (1.0, closed, y, 4))
    assert np.array_equal(y.to_numpy(), np.zeros(4, np.float32))  # nothing ran


def test_name_expressions_find_template_kernels(module):
    ints = kiln.zeros(32, np.int32)
    module.kernel("fill<int>")(1, 32, [ints, 7, 32])  # a list is read as a tuple
    doubles = kiln.zeros(32, np.float64)
    kiln.default_stream().synchronize()  # the zeros' memset, before a launch on another stream
    s = kiln.Stream()
    module.kernel("fill<double>")(1, 32, args=(doubles, 0.5, 32), shared_mem=0, stream=s)
    s.synchronize()
    assert (ints.to_numpy() == 7).all() and (doubles.to_numpy() == 0.5).all()


def test_cupy_arrays_are_arguments_and_view_kiln_buffers(module):
    cp = need("cupy")
    n = 4096
    x = cp.arange(n, dtype=cp.float32)
    y = cp.ones(n, dtype=cp.float32)
    cp.cuda.Device().synchronize()
    module.kernel("saxpy")((n + 255) // 256, 256, (2.0, x, y, n))
    kiln.default_stream().synchronize()
    cp.testing.assert_allclose(y, 2 * cp.arange(n, dtype=cp.float32) + 1)

    b = kiln.to_device(np.arange(10, dtype=np.float64))
    view = cp.asarray(b)  # through __cuda_array_interface__: no copy
    assert view.data.ptr == b.address and view.dtype == cp.float64 and view.shape == (10,)
    view *= 2
    cp.cuda.Device().synchronize()
    assert list(b.to_numpy()) == [2.0 * i for i in range(10)]


def test_torch_tensors_through_the_interface_and_dlpack(module):
    torch = need("torch")
    n = 1000
    x = torch.full((n,), 3.0, device="cuda")
    y = torch.ones(n, device="cuda")
    torch.cuda.synchronize()
    module.kernel("saxpy")(4, 256, (2.0, x, y, n))
    kiln.default_stream().synchronize()
    assert torch.allclose(y, torch.full((n,), 7.0, device="cuda"))

    class OnlyDLPack:  # an array that offers DLPack and nothing else
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, **kwargs):
            return self.t.__dlpack__(**kwargs)

    module.kernel("saxpy")(4, 256, (1.0, OnlyDLPack(x[10:]), OnlyDLPack(y), n - 10))
    kiln.default_stream().synchronize()
    assert y[0].item() == 10.0 and y[n - 11].item() == 10.0 and y[n - 1].item() == 7.0

    with pytest.raises(kiln.InvalidArgumentError, match="host memory"):
        module.kernel("saxpy")(1, 1, (1.0, OnlyDLPack(torch.ones(4)), y, 4))

    # A kiln buffer names the stream its memory is ordered on, so torch waits for kiln's work there.
    on_device = kiln.to_device(np.arange(5, dtype=np.float32))
    assert on_device.__cuda_array_interface__["stream"] == kiln.default_stream().handle != 0
    view = torch.as_tensor(on_device, device="cuda")
    assert view.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    zeros = torch.as_tensor(kiln.zeros(1 << 20), device="cuda")  # the memset is asynchronous on kiln's stream
    assert int(torch.count_nonzero(zeros)) == 0


def test_streams_events_and_waits(module):
    s = kiln.Stream()
    start, end = kiln.Event(timing=True), kiln.Event(timing=True)
    start.record(s)
    module.kernel("spin")(1, 1, (50_000_000,), stream=s)  # tens of milliseconds
    end.record(s)
    with pytest.raises(kiln.TimeoutError) as caught:
        s.wait(timeout=0.001)
    assert caught.value.name == "KILN_ERROR_TIMEOUT"
    assert "still running after the deadline" in str(caught.value)
    s.synchronize()
    assert start.elapsed_ms(end) > 1.0
    with pytest.raises(kiln.InvalidArgumentError, match="timeout must be a finite number of seconds"):
        s.wait(timeout=-1)


def test_waits_release_the_gil(module):
    s = kiln.Stream()
    module.kernel("spin")(1, 1, (200_000_000,), stream=s)  # about 100 ms
    _, during = counted_during(s.synchronize)
    assert during > 1000


def test_pinned_async_copies_round_trip():
    pool = kiln.default_pinned_pool()
    host = pool.empty(1 << 20, np.float32)
    host[...] = np.arange(host.size, dtype=np.float32)
    s = kiln.Stream()
    d = kiln.empty(host.size, np.float32, stream=s)
    d.copy_from_host(host, stream=s, asynchronous=True)
    back = pool.empty(host.size, np.float32)
    d.copy_to_host(back, stream=s, asynchronous=True)
    s.synchronize()
    assert np.array_equal(back, host)
    with pytest.raises(kiln.InvalidArgumentError, match="pageable"):
        d.copy_from_host(np.ones(host.size, np.float32), stream=s, asynchronous=True)
    with pytest.raises(kiln.InvalidArgumentError, match="do not fit"):
        d.copy_from_host(np.ones(host.size + 1, np.float32))
    with pytest.raises(kiln.InvalidArgumentError, match="C-contiguous host buffer .*got object"):
        d.copy_from_host(object())
    with pytest.raises(kiln.InvalidArgumentError, match="C-contiguous writable host buffer .*got bytes"):
        d.copy_to_host(bytes(16))
    with pytest.raises(kiln.InvalidArgumentError, match="stream must be a kiln.Stream or None, not str"):
        d.copy_from_host(host, stream="s")
    d.close()
    with pytest.raises(kiln.InvalidArgumentError, match="copy_from_host: the buffer was closed"):
        d.copy_from_host(host)


def test_managed_memory_is_seen_from_both_sides(module):
    m = kiln.managed_empty(64, np.int32)
    module.kernel("fill<int>")(1, 64, (m, 11, 64))
    kiln.default_stream().synchronize()
    view = m.numpy()
    assert (view == 11).all()
    view[:] = 5
    m.prefetch(to_host=False)
    assert (m.to_numpy() == 5).all()


def test_out_of_memory_says_what_was_asked_and_what_is_there():
    total = kiln.devices()[0].memory_total
    with pytest.raises(kiln.OutOfMemoryError) as caught:
        kiln.DeviceBuffer(total * 4, np.uint8)
    e = caught.value
    assert e.requested == total * 4 and e.total == total and 0 < e.free <= total
    assert not e.sticky and "Tried to allocate" in str(e)
    kiln.zeros(16)  # the device still works


def test_an_illegal_address_is_sticky_and_explained():
    # Sticky: the context is lost for the whole process, so it happens in a child.
    child = textwrap.dedent('''
        import kiln
        k = kiln.compile('extern "C" __global__ void bad(int* p) { p[threadIdx.x] = 1; }').kernel("bad")
        k(1, 32, (16,))
        try:
            kiln.default_stream().synchronize()
        except kiln.IllegalAddressError as e:
            print("caught", e.name, e.sticky, bool(e.hint))
            try:
                kiln.zeros(4).to_numpy()
            except kiln.Error as later:
                print("later", later.sticky)
    ''')
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=os.environ, timeout=120)
    assert "caught CUDA_ERROR_ILLEGAL_ADDRESS True True" in out.stdout, out.stdout + out.stderr
    assert "later True" in out.stdout, out.stdout + out.stderr


def test_devices_and_memory_info():
    [d, *_] = kiln.devices()
    assert d.name and d.uuid.startswith("GPU-") and d.compute_capability >= (7, 0)
    free, total = d.memory_info()
    assert total == d.memory_total and 0 < free <= total
    before = kiln.pool_stats()["allocations"]
    kiln.empty(1024)
    assert kiln.pool_stats()["allocations"] == before + 1


def test_borrowed_streams_order_kiln_with_cupy_and_torch(module):
    cp = need("cupy")
    torch = need("torch")
    n = 1 << 20
    cs = cp.cuda.Stream(non_blocking=True)
    with cs:
        x = cp.ones(n, cp.float32)
        y = cp.zeros(n, cp.float32)
        y += 1  # queued on cs: kiln's launch below must run after it
    s = kiln.borrow_stream(cs)
    module.kernel("saxpy")((n + 255) // 256, 256, (3.0, x, y, n), stream=s)
    with cs:
        y *= 2  # and this after kiln's launch
    cs.synchronize()
    assert float(y[0]) == 8.0 and float(y[n - 1]) == 8.0

    ts = torch.cuda.Stream()
    with torch.cuda.stream(ts):
        tx = torch.ones(n, device="cuda")
        ty = torch.ones(n, device="cuda")
        module.kernel("saxpy")((n + 255) // 256, 256, (1.0, tx, ty, n), stream=kiln.borrow_stream(ts))
        ty.mul_(5)
    ts.synchronize()
    assert ty[0].item() == 10.0

    b = kiln.DeviceBuffer(16, np.float32, stream=kiln.borrow_stream(cp.cuda.Stream(non_blocking=True)))
    assert b.to_numpy().shape == (16,)
    del cs, b  # the buffer keeps its borrowed stream, and that its CuPy owner, until it is freed
    with pytest.raises(TypeError, match="stream handle"):
        kiln.borrow_stream(object())


def test_a_stream_of_another_context_is_refused():
    from cuda.bindings import driver

    err, dev = driver.cuDeviceGet(0)
    err, ctx = driver.cuCtxCreate(None, 0, dev) if hasattr(driver, "CUctxCreateParams") else driver.cuCtxCreate(0, dev)
    assert err == driver.CUresult.CUDA_SUCCESS, err
    try:
        err, stream = driver.cuStreamCreate(1)
        assert err == driver.CUresult.CUDA_SUCCESS
        with pytest.raises(kiln.InvalidArgumentError, match="belongs to context"):
            kiln.borrow_stream(int(stream))
        driver.cuStreamDestroy(stream)
    finally:
        driver.cuCtxDestroy(ctx)
