"""kiln.kilnd against a real kilnd started here (loopback HTTP): shared memory regions registered,
listed, refused with the field named, unregistered on close, dropped when their owner process ends;
on a GPU, a region's bytes go into a buffer and back. The IPC socket (CUDA IPC): its protocol and
refusals everywhere; on a GPU, kilnd's buffer mapped here through cuda.bindings with no copy."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from kiln import kilnd

TOKEN = "python-client-token-0123456789abcdef"


@pytest.fixture
def server(tmp_path):
    binary = os.environ.get("KILND")
    if not binary:
        pytest.skip("KILND is not set (kilnd was not built: it needs Boost.Beast)")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {TOKEN}\n")
    tokens.chmod(0o600)
    config = tmp_path / "kilnd.json"
    config.write_text(json.dumps({"allow_client_shm": True, "allow_client_ipc": True}))
    ipc_path = str(tmp_path / "kilnd.sock")
    process = subprocess.Popen([binary, "--port", "0", "--tokens", str(tokens), "--config", str(config), "--cache-dir",
                                str(tmp_path / "cache"), "--ipc-socket", ipc_path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        found = None
        for line in process.stdout:  # the HTTP address, then the IPC socket
            found = found or re.search(r"listening on (http://[0-9.]+:[0-9]+)", line)
            if "serving the IPC socket on" in line:
                break
        else:
            pytest.fail(f"kilnd exited ({process.wait()}) without listening")
        with kilnd.Client(found.group(1), TOKEN) as client:
            client.ipc_path = ipc_path  # for the IPC socket's tests
            yield client
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_a_region_is_registered_listed_and_unregistered_on_close(server):
    region = kilnd.SharedMemory(server, 1 << 20)
    assert region.info["bytes"] == 1 << 20 and region.info["owner_pid"] == os.getpid()
    assert region.info["name"].startswith("/")
    listed = server.request("GET", "/v1/shm")["regions"]
    assert [r["id"] for r in listed] == [region.id]
    region.numpy(np.float32)[:4] = [1, 2, 3, 4]
    assert bytes(region.buf[:4]) == np.float32(1).tobytes()
    view = region.numpy(np.float32)
    with pytest.raises(BufferError, match="drop them"):
        region.close()  # unregistered and unlinked all the same
    del view
    with pytest.raises(kilnd.KilndError) as gone:
        server.request("GET", f"/v1/shm/{region.id}")
    assert gone.value.status == 404
    region.close()  # twice is nothing


def test_refusals_name_the_field(server):
    with pytest.raises(kilnd.KilndError) as bad:
        server.request("POST", "/v1/shm", {"name": "no-slash", "bytes": 16})
    assert bad.value.status == 400 and bad.value.field == "name"
    with kilnd.SharedMemory(server, 4096) as region:
        with pytest.raises(kilnd.KilndError) as too_big:
            server.request("POST", "/v1/shm", {"name": region.info["name"], "bytes": 8192})
        assert too_big.value.field == "bytes" and "4096" in too_big.value.message
        with pytest.raises(kilnd.KilndError) as no_buffer:
            region.upload(12345)
        assert no_buffer.value.status in (404, 503)  # no such buffer (or no GPU for buffers at all)


def test_a_region_ends_with_the_process_that_registered_it(server):
    address = f"http://{server._host}:{server._port}"
    child = subprocess.run(
        [sys.executable, "-c",
         "from kiln import kilnd; import sys; c = kilnd.Client(sys.argv[1], sys.argv[2]); "
         "r = kilnd.SharedMemory(c, 4096); print(r.id)", address, TOKEN],
        capture_output=True, text=True, timeout=120, env=os.environ)
    assert child.returncode == 0, child.stderr
    region = int(child.stdout.split()[-1])
    # The child ended without closing: kilnd drops the region it tied to it.
    with pytest.raises(kilnd.KilndError) as gone:
        server.request("GET", f"/v1/shm/{region}")
    assert gone.value.status == 404


@pytest.mark.gpu
def test_a_region_round_trips_through_a_buffer(server):
    n = 1 << 20
    buffer = server.request("POST", "/v1/buffers", {"bytes": n * 4})["id"]
    with kilnd.SharedMemory(server, 2 * n * 4) as region:
        assert region.info["pinned"] is True
        data = region.numpy(np.float32)
        data[:n] = np.arange(n, dtype=np.float32)
        assert region.upload(buffer, nbytes=n * 4) == n * 4
        assert region.download(buffer, region_offset=n * 4) == n * 4
        assert np.array_equal(data[n:], np.arange(n, dtype=np.float32))
        del data  # a view of the region keeps it mapped: close() refuses to unmap under it
    server.request("DELETE", f"/v1/buffers/{buffer}")


def test_the_ipc_socket_answers_and_refuses_clearly(server):
    with kilnd.IpcSocket(server.ipc_path, TOKEN) as ipc:
        hello = ipc.hello()
        assert hello["protocol"] == 1 and "export_buffer" in hello["ops"]
        with pytest.raises(kilnd.KilndError) as missing:
            ipc.export_buffer(12345)
        assert missing.value.code == "not_found" and missing.value.status is None
        fd = os.memfd_create("not-device-memory")
        try:
            with pytest.raises(kilnd.KilndError) as refused:
                ipc.import_buffer(fd, 4096)
            # Without a GPU: no device to map it on; with one: a memfd is not device memory.
            assert refused.value.code in ("no_gpu", "bad_request"), refused.value
        finally:
            os.close(fd)
        assert ipc.hello()["protocol"] == 1  # the connection serves on after refusals
    with kilnd.IpcSocket(server.ipc_path, "not-a-token-0123456789abcdef") as stranger:
        with pytest.raises(kilnd.KilndError) as unauthorized:
            stranger.export_buffer(1)
        assert unauthorized.value.code == "unauthorized"


@pytest.mark.gpu
def test_a_kilnd_buffer_is_mapped_here_with_no_copy(server):
    driver = pytest.importorskip("cuda.bindings.driver")

    def check(result):
        err, *values = result if isinstance(result, tuple) else (result,)
        assert err == driver.CUresult.CUDA_SUCCESS, err
        return values[0] if len(values) == 1 else values

    n = 1 << 20
    data = np.arange(n, dtype=np.uint32)
    buffer = server.request("POST", "/v1/buffers", {"bytes": n * 4})["id"]
    with kilnd.SharedMemory(server, n * 4) as region:
        region.numpy(np.uint32)[:] = data
        region.upload(buffer)
    check(driver.cuInit(0))
    context = check(driver.cuDevicePrimaryCtxRetain(check(driver.cuDeviceGet(0))))
    check(driver.cuCtxSetCurrent(context))
    with kilnd.IpcSocket(server.ipc_path, TOKEN) as ipc, ipc.export_buffer(buffer) as exported:
        assert exported.buffer["id"] == buffer and exported.mapped_bytes >= n * 4
        handle = check(driver.cuMemImportFromShareableHandle(
            exported.fd, driver.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR))
        size = exported.mapped_bytes
        address = check(driver.cuMemAddressReserve(size, 0, 0, 0))
        check(driver.cuMemMap(address, size, 0, handle, 0))
        access = driver.CUmemAccessDesc()
        access.location.type = driver.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
        access.location.id = 0
        access.flags = driver.CUmemAccess_flags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE
        check(driver.cuMemSetAccess(address, size, [access], 1))
        seen = np.zeros(n, dtype=np.uint32)
        check(driver.cuMemcpyDtoH(seen.ctypes.data, address, n * 4))
        assert np.array_equal(seen, data)  # what kilnd's buffer holds, read here through the mapping
        check(driver.cuMemsetD32(address, 7, n))  # and written here: kilnd reads it
        check(driver.cuCtxSynchronize())
        with kilnd.SharedMemory(server, n * 4) as region:
            region.download(buffer)
            assert np.all(region.numpy(np.uint32) == 7)
        check(driver.cuMemUnmap(address, size))
        check(driver.cuMemAddressFree(address, size))
        check(driver.cuMemRelease(handle))
    check(driver.cuDevicePrimaryCtxRelease(check(driver.cuDeviceGet(0))))
    server.request("DELETE", f"/v1/buffers/{buffer}")
