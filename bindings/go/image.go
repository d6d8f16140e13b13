package kiln

/*
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// Origin says where a compile's image came from.
type Origin int

// The origins of an image.
const (
	OriginCompiled Origin = C.KILN_ORIGIN_COMPILED // NVRTC ran
	OriginMemory   Origin = C.KILN_ORIGIN_MEMORY   // the cache's memory tier
	OriginDisk     Origin = C.KILN_ORIGIN_DISK     // the cache's disk tier (maybe another process's compile)
)

// String is "compiled", "memory" or "disk".
func (o Origin) String() string {
	switch o {
	case OriginMemory:
		return "memory"
	case OriginDisk:
		return "disk"
	}
	return "compiled"
}

// Image is a compiled program: CUBIN or PTX, ready to load on devices (LoadModule). Close it when
// no more modules are to be loaded from it; modules already loaded stay.
type Image struct {
	record      atomic.Pointer[imageRecord] // nil once closed
	target      Target
	origin      Origin
	compileTime time.Duration
}

type imageRecord struct {
	handle *C.kiln_image
	data   unsafe.Pointer // C memory, valid while handle is
	size   int
	target Target
	log    *C.char // a C string, valid while handle is: copied only when asked for
}

var imageRecords = newRecycler(func(r *imageRecord) {
	if r.handle != nil {
		reportLeak("kiln.Image for %v (key %.12s…)", r.target, imageKey(r.handle))
		C.kiln_image_destroy(r.handle)
	}
})

func newImage(h *C.kiln_image, info *C.kiln_image_info) *Image {
	img := &Image{
		target:      targetOf(info.target),
		origin:      Origin(info.origin),
		compileTime: time.Duration(info.compile_ns),
	}
	r := imageRecords.get()
	*r = imageRecord{handle: h, data: unsafe.Pointer(info.data), size: int(info.data_size), target: img.target,
		log: info.log}
	img.record.Store(r)
	return img
}

func (i *Image) open() *imageRecord {
	if i == nil {
		return nil
	}
	return i.record.Load()
}

func (i *Image) raw() *C.kiln_image {
	if r := i.open(); r != nil {
		return r.handle
	}
	return nil
}

// Target is what the image was compiled for.
func (i *Image) Target() Target { return i.target }

// Origin says whether NVRTC ran or which cache tier had the image.
func (i *Image) Origin() Origin { return i.origin }

// CompileTime is how long NVRTC took (for a cache hit: when it compiled the image).
func (i *Image) CompileTime() time.Duration { return i.compileTime }

// Key is the image's cache key (hex SHA-256); "" once the image is closed.
func (i *Image) Key() string {
	if r := i.open(); r != nil {
		return imageKey(r.handle)
	}
	return ""
}

// imageKey formats the key in C only when asked: a cache hit does not pay for it.
func imageKey(h *C.kiln_image) string {
	var hex [65]C.char
	if C.kiln_image_key(h, &hex[0], nil) != C.KILN_OK {
		return ""
	}
	return C.GoString(&hex[0])
}

// Log is NVRTC's log; "" once the image is closed.
func (i *Image) Log() string {
	if r := i.open(); r != nil {
		return goString(r.log)
	}
	return ""
}

// Data is a copy of the image: CUBIN bytes or PTX text. Nil once the image is closed.
func (i *Image) Data() []byte {
	r := i.open()
	if r == nil {
		return nil
	}
	return C.GoBytes(r.data, C.int(r.size))
}

// LoweredName is the mangled name of a name expression the program listed.
func (i *Image) LoweredName(nameExpression string) (string, error) {
	if err := refuseNul("kiln.Image.LoweredName", "the name expression", nameExpression); err != nil {
		return "", err
	}
	expr := C.CString(nameExpression)
	defer C.free(unsafe.Pointer(expr))
	f := getFrame(0, 0)
	defer putFrame(f)
	var lowered *C.char
	status := C.kiln_image_lowered_name(i.raw(), expr, &lowered, &f.c.error)
	defer runtime.KeepAlive(i)
	if status != C.KILN_OK {
		return "", takeError(&f.c.error)
	}
	return goString(lowered), nil
}

// Diagnostics are the warnings and remarks NVRTC gave for the program it accepted.
func (i *Image) Diagnostics() ([]Diagnostic, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	var d *C.kiln_diagnostics
	status := C.kiln_image_diagnostics(i.raw(), &d, &f.c.error)
	runtime.KeepAlive(i)
	if status != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	if d == nil {
		return nil, nil
	}
	return takeDiagnostics(d, int(C.kiln_diagnostics_count(d))), nil
}

// Close releases the image. Closing twice does nothing.
func (i *Image) Close() error {
	if i == nil {
		return nil
	}
	if r := i.record.Swap(nil); r != nil {
		C.kiln_image_destroy(r.handle)
		*r = imageRecord{}
		imageRecords.put(r)
	}
	return nil
}
