"""kiln.kilnd against a real kilnd started here (loopback HTTP): shared memory regions registered,
listed, refused with the field named, unregistered on close, dropped when their owner process ends;
on a GPU, a region's bytes go into a buffer and back."""

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
    config.write_text(json.dumps({"allow_client_shm": True}))
    process = subprocess.Popen([binary, "--port", "0", "--tokens", str(tokens), "--config", str(config), "--cache-dir",
                                str(tmp_path / "cache")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            found = re.search(r"listening on (http://[0-9.]+:[0-9]+)", line)
            if found:
                break
        else:
            pytest.fail(f"kilnd exited ({process.wait()}) without listening")
        with kilnd.Client(found.group(1), TOKEN) as client:
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
    region.close()
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
    server.request("DELETE", f"/v1/buffers/{buffer}")
