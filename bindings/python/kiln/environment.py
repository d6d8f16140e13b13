"""What this machine has: versions, the doctor's report, devices and their topology."""

import dataclasses
import json
import os

from . import _native


def version():
    """kiln's version (of the libkiln.so loaded)."""
    return _native.version()


def doctor():
    """What ``kiln doctor --json`` prints, as a dict: the driver, NVRTC, NVML and toolkit found
    (paths, versions), every GPU, every problem with its hint. Never fails for lack of a GPU."""
    return json.loads(_native.environment_json())


@dataclasses.dataclass(frozen=True)
class Device:
    ordinal: int
    name: str
    uuid: str
    pci_bus_id: str
    compute_capability: tuple
    multiprocessors: int
    memory_total: int

    def memory_info(self):
        """(free, total) bytes as the driver sees them now."""
        return memory_info(self.ordinal)


def device_count():
    """The number of CUDA devices; raises kiln.DriverNotFoundError without a driver."""
    return _native.device_count()


def devices():
    return [Device(**_native.device_info(i)) for i in range(device_count())]


def memory_info(device=0):
    """(free, total) bytes of a device as the driver sees them now."""
    return tuple(_native.device_memory(device))


def topology(fixture=None):
    """The topology as ``kiln topo --json`` prints it (a dict). ``fixture``: a recorded machine's
    folder instead of this one."""
    return json.loads(_native.topology_json(os.fspath(fixture) if fixture else ""))


def choose_gpus(k, *, min_free_bytes=0, numa_node=-1, exclude=(), fixture=None):
    """The k GPUs placement picks (NVLink first, then PCIe switch, root complex, NUMA node; ties by
    free memory), as a dict with "gpus", "link" and "reason". Raises kiln.InvalidArgumentError
    saying why when fewer than k qualify."""
    return json.loads(_native.topology_choose(os.fspath(fixture) if fixture else "", k, min_free_bytes, numa_node,
                                              [str(x) for x in exclude]))


def allocation_report():
    """(text, live bytes) of kiln's live allocations: what the leak report at exit prints."""
    text, live = _native.allocation_report()
    return text, live
