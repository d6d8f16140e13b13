package kiln

/*
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"context"
	"runtime"
	"unsafe"
)

// DeviceLibrary is a set of device functions compiled once to LTO-IR (per architecture, at first
// use, through the cache of the compile that links it) and linked by nvJitLink into the kernels
// that call them (-lto: they still inline), so each kernel compiles only its own lines. Any
// goroutine may use it; Close it when no compile needs it any more.
type DeviceLibrary struct {
	handle cHandle
	name   string
}

// NewDeviceLibrary makes a library from source. p.Headers are its declarations: added to its own
// source and to every kernel linked with it (#include "mathlib.cuh").
func NewDeviceLibrary(p Program) (*DeviceLibrary, error) {
	const call = "kiln.NewDeviceLibrary"
	enc := encodedPrograms.Get().(*programEncoder)
	defer encodedPrograms.Put(enc)
	if err := enc.encode(&p, call); err != nil {
		return nil, err
	}
	f := getFrame(0, 0)
	defer putFrame(f)
	if C.kiln_go_library_from_source((*C.uchar)(unsafe.SliceData(enc.buf)), C.size_t(len(enc.buf)), f.c) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	l := &DeviceLibrary{name: p.Name}
	l.handle.store(f.c.handle)
	runtime.SetFinalizer(l, (*DeviceLibrary).finalize)
	return l, nil
}

// Name is the library's program name (what link diagnostics call it).
func (l *DeviceLibrary) Name() string { return l.name }

func (l *DeviceLibrary) raw() *C.kiln_device_library {
	if l == nil {
		return nil
	}
	return (*C.kiln_device_library)(l.handle.load())
}

// Close releases the library (images linked with it stay valid). Closing twice does nothing.
func (l *DeviceLibrary) Close() error {
	if h := (*C.kiln_device_library)(l.handle.take()); h != nil {
		runtime.SetFinalizer(l, nil)
		C.kiln_device_library_destroy(h)
	}
	return nil
}

func (l *DeviceLibrary) finalize() {
	if h := (*C.kiln_device_library)(l.handle.take()); h != nil {
		reportLeak("kiln.DeviceLibrary")
		C.kiln_device_library_destroy(h)
	}
}

// CompileAndLink compiles p to LTO-IR (its own lines, the libraries' headers added) and links it
// with the libraries, in order, into t, every step through the cache: the same call again is a
// memory hit, and the image's Key changes with any library's content. A link nvJitLink refuses is
// ErrLinkFailed, its Diagnostics naming each undefined or duplicate symbol; without nvJitLink,
// ErrNVJitLinkNotFound.
func (c *Cache) CompileAndLink(ctx context.Context, p Program, libraries []*DeviceLibrary, t Target) (*Image, error) {
	if len(libraries) == 0 {
		return nil, newError(C.KILN_ERRC_INVALID_ARGUMENT, "kiln.Cache.CompileAndLink", "no libraries to link with (use Compile)")
	}
	return c.compile(ctx, "kiln.Cache.CompileAndLink", p, libraries, t)
}
