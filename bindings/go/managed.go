package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Managed is unified memory: one address valid on the host and on every device, its pages
// migrating on demand or when prefetched.
type Managed struct {
	handle cHandle
	ptr    DevicePtr
	host   unsafe.Pointer // the same address, as the host sees it (C memory)
	size   int
	device int
	tag    string
}

// NewManaged allocates managed memory, attached to a device; the tag names it in reports.
func NewManaged(device int, bytes int, tag string) (*Managed, error) {
	if bytes < 0 {
		return nil, newError(C.KILN_ERRC_INVALID_ARGUMENT, "kiln.NewManaged", "a size of %d bytes", bytes)
	}
	f, hasTag := frameWithTag(tag)
	defer putFrame(f)
	if C.kiln_go_managed_create(C.int(device), C.size_t(bytes), hasTag, f.c) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	m := &Managed{ptr: DevicePtr(f.c.address), host: f.c.data, size: bytes, device: device, tag: tag}
	m.handle.store(f.c.handle)
	runtime.SetFinalizer(m, (*Managed).finalize)
	return m, nil
}

func (m *Managed) raw() *C.kiln_managed {
	if m == nil {
		return nil
	}
	return (*C.kiln_managed)(m.handle.load())
}

// Ptr is the memory's address, valid on the host and on devices (0 once closed).
func (m *Managed) Ptr() DevicePtr {
	if m.raw() == nil {
		return 0
	}
	return m.ptr
}

// Size is the memory's size in bytes (0 once closed).
func (m *Managed) Size() int {
	if m.raw() == nil {
		return 0
	}
	return m.size
}

// Bytes is the memory seen from the host: valid until Close, nil after. Reading or writing it
// while a kernel uses the memory is a data race the GPU cannot see.
func (m *Managed) Bytes() []byte {
	if m.raw() == nil {
		return nil
	}
	return unsafe.Slice((*byte)(m.host), m.size)
}

// PrefetchToDevice migrates the pages to s's device, in order on s.
func (m *Managed) PrefetchToDevice(s *Stream) error { return m.prefetch(s, 0) }

// PrefetchToHost migrates the pages to the host, in order on s.
func (m *Managed) PrefetchToHost(s *Stream) error { return m.prefetch(s, 1) }

func (m *Managed) prefetch(s *Stream, toHost C.int) error {
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_managed_prefetch(m.raw(), toHost, s.raw(), &f.c.error)
	runtime.KeepAlive(m)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// Close frees the memory. Closing twice does nothing.
func (m *Managed) Close() error {
	if m == nil {
		return nil
	}
	if h := (*C.kiln_managed)(m.handle.take()); h != nil {
		runtime.SetFinalizer(m, nil)
		C.kiln_managed_destroy(h)
	}
	return nil
}

func (m *Managed) finalize() {
	if h := (*C.kiln_managed)(m.handle.take()); h != nil {
		reportLeak("kiln.Managed of %d bytes (tag %q)", m.size, m.tag)
		C.kiln_managed_destroy(h)
	}
}

func (m *Managed) hostSpan() (unsafe.Pointer, int, bool) {
	if m.raw() == nil {
		return nil, 0, false
	}
	return m.host, m.size, true
}
