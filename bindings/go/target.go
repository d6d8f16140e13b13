package kiln

/*
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"strconv"
	"sync/atomic"
	"unsafe"
)

// ImageKind is what a compile produces: CUBIN for one architecture, or PTX the driver compiles.
type ImageKind int

// The kinds of image.
const (
	Cubin ImageKind = C.KILN_IMAGE_CUBIN
	PTX   ImageKind = C.KILN_IMAGE_PTX
)

// String is "cubin" or "ptx".
func (k ImageKind) String() string {
	if k == PTX {
		return "ptx"
	}
	return "cubin"
}

// Target is what to compile for: Target{Cubin, 90} is sm_90, Target{PTX, 90} is compute_90.
type Target struct {
	Kind ImageKind
	Arch int
}

// String is the target as NVRTC names it: "sm_90" or "compute_90".
func (t Target) String() string {
	if t.Kind == PTX {
		return "compute_" + strconv.Itoa(t.Arch)
	}
	return "sm_" + strconv.Itoa(t.Arch)
}

func (t Target) c() C.kiln_target {
	return C.kiln_target{kind: C.kiln_image_kind(t.Kind), arch: C.int(t.Arch)}
}

func targetOf(t C.kiln_target) Target { return Target{Kind: ImageKind(t.kind), Arch: int(t.arch)} }

// ParseTarget reads "sm_90", "compute_90", "90" or "9.0".
func ParseTarget(text string) (Target, error) {
	if err := refuseNul("kiln.ParseTarget", "the target", text); err != nil {
		return Target{}, err
	}
	s := C.CString(text)
	defer C.free(unsafe.Pointer(s))
	f := getFrame(0, 0)
	defer putFrame(f)
	if C.kiln_target_parse(s, &f.c.target, &f.c.error) != C.KILN_OK {
		return Target{}, takeError(&f.c.error)
	}
	return targetOf(f.c.target), nil
}

// TargetForDevice is the best target for a device: CUBIN for its architecture when NVRTC has it,
// else PTX.
func TargetForDevice(ordinal int) (Target, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	if C.kiln_target_for_device(C.int(ordinal), &f.c.target, &f.c.error) != C.KILN_OK {
		return Target{}, takeError(&f.c.error)
	}
	return targetOf(f.c.target), nil
}

// The target of device 0, asked once it is known (it cannot change in a process).
var deviceZeroTarget atomic.Pointer[Target]

func defaultTarget() (Target, error) {
	if t := deviceZeroTarget.Load(); t != nil {
		return *t, nil
	}
	t, err := TargetForDevice(0)
	if err != nil {
		return Target{}, err
	}
	deviceZeroTarget.Store(&t)
	return t, nil
}
