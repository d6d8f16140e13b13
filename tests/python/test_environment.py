"""Versions, the doctor's report and topology, beside what the kiln CLI says."""

import json
import os
import subprocess

import pytest

import kiln

FIXTURES = os.environ.get("KILN_TOPOLOGY_FIXTURES", "")
CLI = os.environ.get("KILN_CLI", "")


def cli(*args):
    if not CLI:
        pytest.skip("KILN_CLI is not set (ctest sets it)")
    return subprocess.run([CLI, *args], capture_output=True, text=True)


def test_version():
    assert kiln.version() == kiln.__version__
    assert kiln.version().count(".") == 2
    assert kiln._native.abi_version() == 1


def _steady(report):
    """The report without what other processes change between two looks (a GPU's free memory)."""
    report = json.loads(json.dumps(report))
    for gpu in report.get("gpus", []):
        gpu.pop("memory_free", None)
    return report


def test_doctor_reports_nvrtc_and_the_driver():
    report = kiln.doctor()
    assert _steady(report) == _steady(json.loads(cli("doctor", "--json").stdout))
    text = json.dumps(report).lower()
    assert "nvrtc" in text and "driver" in text


def test_topology_of_a_recorded_machine_matches_the_cli():
    fixture = os.path.join(FIXTURES, "dgx-h100-8gpu")
    if not os.path.isdir(fixture):
        pytest.skip("no topology fixtures (KILN_TOPOLOGY_FIXTURES)")
    topo = kiln.topology(fixture)
    assert topo == json.loads(cli("topo", "--json", "--fixture", fixture).stdout)
    assert len(topo["gpus"]) == 8


def test_choose_gpus_on_a_recorded_machine():
    fixture = os.path.join(FIXTURES, "dgx-h100-8gpu")
    if not os.path.isdir(fixture):
        pytest.skip("no topology fixtures (KILN_TOPOLOGY_FIXTURES)")
    chosen = kiln.choose_gpus(2, fixture=fixture)
    assert len(chosen["gpus"]) == 2 and chosen["link"].startswith("NV")
    with pytest.raises(kiln.InvalidArgumentError, match="9"):
        kiln.choose_gpus(9, fixture=fixture)


def test_device_calls_without_a_driver_raise_driver_not_found():
    try:
        kiln.device_count()
        pytest.skip("a driver is here")
    except kiln.DriverNotFoundError as e:
        assert e.hint and e.name
    with pytest.raises(kiln.DriverNotFoundError):
        kiln.DeviceBuffer(16)
    with pytest.raises(kiln.DriverNotFoundError):
        kiln.memory_info(0)
