package kiln

/*
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"encoding/json"
	"unsafe"
)

// TopologyReport is where each GPU sits (PCIe tree, NUMA node, local CPUs, NVLinks), how CUDA,
// NVML and nvidia-smi number it, and nvidia-smi's matrix: what `kiln topo --json` prints
// (docs/TOPOLOGY.md).
type TopologyReport struct {
	SysfsRoot     string         `json:"sysfs_root"`
	FactsSource   string         `json:"facts_source"`
	DriverVersion string         `json:"driver_version"`
	GPUs          []TopologyGPU  `json:"gpus"` // in NVML order (PCI bus order): index i is nvidia-smi's GPU i
	Matrix        TopologyMatrix `json:"matrix"`
	CUDADevices   []CUDADevice   `json:"cuda_devices"`
	CUDANotes     []string       `json:"cuda_notes"`
	NUMANodes     []NUMANode     `json:"numa_nodes"`
	P2P           []P2PLink      `json:"p2p"`

	fixtureDir string
}

// TopologyGPU is one GPU of a topology.
type TopologyGPU struct {
	Index             int          `json:"index"`
	NVMLIndex         *int         `json:"nvml_index"`
	CUDAOrdinal       *int         `json:"cuda_ordinal"` // nil when CUDA does not see it (CUDA_VISIBLE_DEVICES)
	UUID              string       `json:"uuid"`
	PCIBusID          string       `json:"pci_bus_id"`
	Name              string       `json:"name"`
	ComputeCapability string       `json:"compute_capability"`
	MemoryTotal       uint64       `json:"memory_total"`
	MemoryFree        *uint64      `json:"memory_free"`
	NUMANode          int          `json:"numa_node"` // -1 when the firmware gives none
	NUMAAffinity      []int        `json:"numa_affinity"`
	CPUAffinity       string       `json:"cpu_affinity"` // "0-55,112-167"
	PCIe              PCIeLink     `json:"pcie"`
	HostBridge        string       `json:"host_bridge"` // "pci0000:17": the root complex
	PCIePath          []PCIeBridge `json:"pcie_path"`   // nearest bridge first, ending with the root port
	NVLinks           []NVLink     `json:"nvlinks"`
	MIG               MIG          `json:"mig"`
}

// PCIeLink is a PCIe link's speed (GT/s) and width, now and at most.
type PCIeLink struct {
	CurrentGTs        float64 `json:"current_gts"`
	CurrentWidth      int     `json:"current_width"`
	CurrentGeneration *int    `json:"current_generation"`
	MaxGTs            float64 `json:"max_gts"`
	MaxWidth          int     `json:"max_width"`
	MaxGeneration     *int    `json:"max_generation"`
}

// PCIeBridge is a bridge on a GPU's path to its root port.
type PCIeBridge struct {
	PCIBusID string   `json:"pci_bus_id"`
	Role     string   `json:"role"` // "root_port", "upstream", "downstream"
	VendorID string   `json:"vendor_id"`
	DeviceID string   `json:"device_id"`
	Link     PCIeLink `json:"link"`
}

// NVLink is one active NVLink and its far end.
type NVLink struct {
	Link           int    `json:"link"`
	RemotePCIBusID string `json:"remote_pci_bus_id"`
	RemoteType     string `json:"remote_type"` // "gpu" or "switch"
}

// MIG is a GPU's MIG mode and instances.
type MIG struct {
	Enabled   bool          `json:"enabled"`
	Instances []MIGInstance `json:"instances"`
}

// MIGInstance is one MIG instance.
type MIGInstance struct {
	UUID            string `json:"uuid"`
	GPUInstance     int    `json:"gpu_instance"`
	ComputeInstance int    `json:"compute_instance"`
	Name            string `json:"name"`
	MemoryTotal     uint64 `json:"memory_total"`
}

// TopologyMatrix is nvidia-smi's `topo -m` matrix.
type TopologyMatrix struct {
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
}

// CUDADevice is one device as CUDA numbers it here.
type CUDADevice struct {
	Ordinal  int     `json:"ordinal"`
	GPUUUID  string  `json:"gpu_uuid"`
	PCIBusID string  `json:"pci_bus_id"`
	MIGUUID  *string `json:"mig_uuid"`
}

// NUMANode is a NUMA node, its CPUs and its distances to the others.
type NUMANode struct {
	ID        int    `json:"id"`
	CPUs      string `json:"cpus"`
	Distances []int  `json:"distances"`
}

// P2PLink is what the driver says about peer access between two GPUs.
type P2PLink struct {
	A               string `json:"a"`
	B               string `json:"b"`
	AccessSupported bool   `json:"access_supported"`
	PerformanceRank int    `json:"performance_rank"`
	NativeAtomics   bool   `json:"native_atomics"`
	CUDAArrayAccess bool   `json:"cuda_array_access"`
}

// Placement is the GPUs placement picks for a job, and why.
type Placement struct {
	GPUs   []PlacedGPU `json:"gpus"`
	Link   string      `json:"link"` // the slowest pair's link class: "NV18", "PIX", ..., "SYS"; "X" for one GPU
	Reason string      `json:"reason"`
}

// PlacedGPU is one GPU of a placement, named by UUID and bus id.
type PlacedGPU struct {
	UUID        string `json:"uuid"`
	PCIBusID    string `json:"pci_bus_id"`
	CUDAOrdinal *int   `json:"cuda_ordinal"`
	Index       int    `json:"index"` // in TopologyReport.GPUs
}

// optionalCString is NULL for "", else a C copy the caller frees.
func optionalCString(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

func takeJSON(call string, text *C.char, into any) error {
	defer C.kiln_free(unsafe.Pointer(text))
	if err := json.Unmarshal([]byte(C.GoString(text)), into); err != nil {
		return newError(C.KILN_ERRC_INTERNAL, call, "the library's JSON is not what was expected: %v", err)
	}
	return nil
}

// TopologyJSON is the topology as the library prints it (`kiln topo --json`): this machine's
// (fixtureDir ""), or a recorded machine's (a folder with sysfs/ and facts.json).
func TopologyJSON(fixtureDir string) ([]byte, error) {
	if err := refuseNul("kiln.Topology", "the fixture folder", fixtureDir); err != nil {
		return nil, err
	}
	dir := optionalCString(fixtureDir)
	defer C.free(unsafe.Pointer(dir))
	f := getFrame(0, 0)
	defer putFrame(f)
	var text *C.char
	if C.kiln_topology_json(dir, &text, &f.c.error) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	defer C.kiln_free(unsafe.Pointer(text))
	return []byte(C.GoString(text)), nil
}

// Topology is the topology decoded: this machine's (fixtureDir ""), or a recorded machine's.
func Topology(fixtureDir string) (*TopologyReport, error) {
	text, err := TopologyJSON(fixtureDir)
	if err != nil {
		return nil, err
	}
	t := &TopologyReport{fixtureDir: fixtureDir}
	if err := json.Unmarshal(text, t); err != nil {
		return nil, newError(C.KILN_ERRC_INTERNAL, "kiln.Topology", "the library's JSON is not what was expected: %v", err)
	}
	return t, nil
}

// Choose picks k GPUs of the machine this report describes, each with minFreeBytes free: the best
// interconnect first, then the most free memory. Too few eligible GPUs is an error saying why each
// was left out.
func (t *TopologyReport) Choose(k int, minFreeBytes uint64) (*Placement, error) {
	return t.ChooseWith(k, PlacementConstraints{MinFreeBytes: minFreeBytes, NUMANode: -1})
}

// PlacementConstraints narrow the GPUs Choose may pick.
type PlacementConstraints struct {
	MinFreeBytes uint64   // each chosen GPU has this much free
	NUMANode     int      // only GPUs local to this NUMA node; -1: any (the zero value means node 0)
	Exclude      []string // UUIDs or PCI bus ids never to choose
}

// ChooseWith picks k GPUs under the constraints, as Choose does.
func (t *TopologyReport) ChooseWith(k int, constraints PlacementConstraints) (*Placement, error) {
	if k < 0 {
		return nil, newError(C.KILN_ERRC_INVALID_ARGUMENT, "kiln.TopologyReport.Choose", "%d GPUs wanted", k)
	}
	dir := optionalCString(t.fixtureDir)
	defer C.free(unsafe.Pointer(dir))
	// The constraints and their strings in C memory: no Go pointer inside memory passed to C.
	c := (*C.kiln_placement_constraints)(C.calloc(1, C.size_t(unsafe.Sizeof(C.kiln_placement_constraints{}))))
	defer C.free(unsafe.Pointer(c))
	C.kiln_placement_constraints_init(c)
	c.min_free_bytes = C.uint64_t(constraints.MinFreeBytes)
	c.numa_node = C.int(constraints.NUMANode)
	if n := len(constraints.Exclude); n > 0 {
		list := (**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		defer C.free(unsafe.Pointer(list))
		items := unsafe.Slice(list, n)
		for i, e := range constraints.Exclude {
			items[i] = C.CString(e)
			defer C.free(unsafe.Pointer(items[i]))
		}
		c.exclude = list
		c.exclude_count = C.size_t(n)
	}
	f := getFrame(0, 0)
	defer putFrame(f)
	var text *C.char
	if C.kiln_topology_choose(dir, C.size_t(k), c, &text, &f.c.error) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	p := new(Placement)
	if err := takeJSON("kiln.TopologyReport.Choose", text, p); err != nil {
		return nil, err
	}
	return p, nil
}
