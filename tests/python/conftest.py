"""What kiln's Python tests share: a private cache folder per test, and the `gpu` marker, whose
tests skip (saying why) without a driver, and fail instead of skipping where KILN_REQUIRE_GPU=1
(scripts/gpu-check on the GPU machine)."""

import os
import threading
import time

import pytest

import kiln


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA driver and a GPU")


_missing = "unchecked"


def _gpu_missing():
    global _missing
    if _missing == "unchecked":
        try:
            _missing = None if kiln.device_count() > 0 else "the driver reports no GPU"
        except kiln.Error as e:
            _missing = f"no GPU here: {e.name}"
    return _missing


def pytest_runtest_setup(item):
    if "gpu" not in item.keywords:
        return
    missing = _gpu_missing()
    if missing is None:
        return
    if os.environ.get("KILN_REQUIRE_GPU") == "1":
        pytest.fail(f"KILN_REQUIRE_GPU=1 but {missing}")
    pytest.skip(missing)


def need(module):
    """A peer library the GPU tests use (CuPy, PyTorch): required on the GPU machine."""
    if os.environ.get("KILN_REQUIRE_GPU") == "1":
        return __import__(module)
    return pytest.importorskip(module)


@pytest.fixture
def cache(tmp_path):
    return kiln.Cache(tmp_path / "cache")


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    # A test that uses the default cache must not read or fill the user's.
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "default-cache"))


def counted_during(call):
    """Runs call() while another thread counts in Python: (call's result, how far the count moved
    during the call). The count only moves while call() has let go of the GIL."""
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.01)  # the counter is running
        before = counter[0]
        result = call()
        return result, counter[0] - before
    finally:
        stop.set()
        t.join()
