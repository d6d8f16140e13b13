package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"encoding/json"
	"unsafe"
)

// Version is the loaded library's version ("0.1.0").
func Version() string { return C.GoString(C.kiln_version()) }

// ABIVersion is the C ABI version of the loaded library; this package was built for
// HeaderABIVersion.
func ABIVersion() int { return int(C.kiln_abi_version()) }

// HeaderABIVersion is the KILN_ABI_VERSION of the kiln.h this package was compiled against.
const HeaderABIVersion = C.KILN_ABI_VERSION

// EnvironmentReport is what `kiln doctor --json` prints: the libraries found, every GPU and every
// problem with its hint.
type EnvironmentReport struct {
	Kiln struct {
		Version          string `json:"version"`
		BuiltCUDAVersion string `json:"built_cuda_version"`
	} `json:"kiln"`
	System struct {
		OS   string `json:"os"`
		Arch string `json:"arch"`
	} `json:"system"`
	Driver struct {
		LibraryReport
		CUDAVersion string `json:"cuda_version"` // "" without a driver
		Init        string `json:"init"`         // cuInit's result ("CUDA_SUCCESS"), or ""
	} `json:"driver"`
	NVRTC struct {
		LibraryReport
		SupportedArchs []string `json:"supported_archs"` // "sm_90", ...
	} `json:"nvrtc"`
	NVML      LibraryReport `json:"nvml"`
	NVJitLink LibraryReport `json:"nvjitlink"` // the device-code linker, optional
	Toolkit   struct {
		Root    string `json:"root"`
		Include bool   `json:"include"`
		CCCL    bool   `json:"cccl"`
	} `json:"toolkit"`
	GPUs               []GPUReport `json:"gpus"`
	CUDADeviceOrder    string      `json:"cuda_device_order"`
	CUDAVisibleDevices *string     `json:"cuda_visible_devices"` // nil when unset
	Problems           []Problem   `json:"problems"`
	Notes              []Problem   `json:"notes"` // worth knowing, not counted against Healthy
	Healthy            bool        `json:"healthy"`
}

// LibraryReport says whether a library (the driver, NVRTC, NVML) was found, where, and if not why.
type LibraryReport struct {
	Found   bool     `json:"found"`
	Path    string   `json:"path"`
	Version string   `json:"version"`
	Error   string   `json:"error"`  // why it was not found
	Tried   []string `json:"tried"`  // the names and paths tried
	Copies  []string `json:"copies"` // every copy on the loader's path
}

// GPUReport is one GPU as the doctor sees it.
type GPUReport struct {
	Ordinal           int    `json:"ordinal"`
	Name              string `json:"name"`
	UUID              string `json:"uuid"`
	PCIBusID          string `json:"pci_bus_id"`
	ComputeCapability string `json:"compute_capability"` // "9.0"
	MemoryTotal       uint64 `json:"memory_total"`
	MemoryFree        uint64 `json:"memory_free"`
	Multiprocessors   int    `json:"multiprocessors"`
	NVRTCCanCompile   bool   `json:"nvrtc_can_compile"`
	NVMLIndex         *int   `json:"nvml_index"` // nil without NVML
}

// Problem is one thing the doctor found wrong, with a stable ID ("no_driver") and what to do.
type Problem struct {
	ID      string `json:"id"`
	Message string `json:"message"`
	Hint    string `json:"hint"`
}

// Problem returns the problem with the given ID, if the report has it.
func (r *EnvironmentReport) Problem(id string) (Problem, bool) {
	for _, p := range r.Problems {
		if p.ID == id {
			return p, true
		}
	}
	return Problem{}, false
}

// EnvironmentJSON is the doctor's report as the library prints it.
func EnvironmentJSON() ([]byte, error) {
	var text *C.char
	var e C.kiln_error
	if C.kiln_environment_json(&text, &e) != C.KILN_OK {
		return nil, takeError(&e)
	}
	defer C.kiln_free(unsafe.Pointer(text))
	return []byte(C.GoString(text)), nil
}

// Environment is the doctor's report: it never fails for lack of a GPU (that is a problem in it).
func Environment() (*EnvironmentReport, error) {
	text, err := EnvironmentJSON()
	if err != nil {
		return nil, err
	}
	r := new(EnvironmentReport)
	if err := json.Unmarshal(text, r); err != nil {
		return nil, newError(C.KILN_ERRC_INTERNAL, "kiln.Environment", "the report is not the JSON expected: %v", err)
	}
	return r, nil
}

// DeviceCount is the number of CUDA devices. Without a driver it fails with ErrDriverNotFound.
func DeviceCount() (int, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	var n C.int
	if C.kiln_device_count(&n, &f.c.error) != C.KILN_OK {
		return 0, takeError(&f.c.error)
	}
	return int(n), nil
}

// ComputeCapability is a GPU's architecture version (9.0 for Hopper).
type ComputeCapability struct{ Major, Minor int }

// Arch is the architecture number NVRTC and targets use: 90 for 9.0.
func (c ComputeCapability) Arch() int { return c.Major*10 + c.Minor }

// Device describes one CUDA device.
type Device struct {
	Ordinal           int
	Name              string
	UUID              string // "GPU-xxxxxxxx-...", as nvidia-smi prints it
	PCIBusID          string // "0000:00:05.0"
	ComputeCapability ComputeCapability
	Multiprocessors   int
	MemoryTotal       uint64
}

// DeviceInfo describes the device of a CUDA ordinal.
func DeviceInfo(ordinal int) (Device, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	info := &f.c.device_info
	info.size = C.size_t(unsafe.Sizeof(*info))
	if C.kiln_device_get_info(C.int(ordinal), info, &f.c.error) != C.KILN_OK {
		return Device{}, takeError(&f.c.error)
	}
	return Device{
		Ordinal:           int(info.ordinal),
		Name:              C.GoString(&info.name[0]),
		UUID:              C.GoString(&info.uuid[0]),
		PCIBusID:          C.GoString(&info.pci_bus_id[0]),
		ComputeCapability: ComputeCapability{int(info.cc_major), int(info.cc_minor)},
		Multiprocessors:   int(info.multiprocessors),
		MemoryTotal:       uint64(info.memory_total),
	}, nil
}
