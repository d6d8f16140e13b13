package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// DevicePtr is a device memory address (CUdeviceptr). It is never a Go pointer: Go cannot read
// through it, and the garbage collector never sees it.
type DevicePtr uint64

// Add is the address `bytes` further on.
func (p DevicePtr) Add(bytes int) DevicePtr { return p + DevicePtr(bytes) }

// Buffer is device memory from its device's stream-ordered pool. Close frees it in order on the
// stream it was allocated on (work enqueued before still sees it).
type Buffer struct {
	record atomic.Pointer[bufferRecord] // nil once closed
}

type bufferRecord struct {
	handle *C.kiln_buffer
	ptr    DevicePtr
	size   int
	device int
	tag    string
}

var bufferRecords = newRecycler(func(r *bufferRecord) {
	if r.handle != nil {
		reportLeak("kiln.Buffer of %d bytes (tag %q)", r.size, r.tag)
		C.kiln_buffer_destroy(r.handle)
	}
})

// NewBuffer allocates device memory in order on s, on s's device; the tag names it in leak and
// allocation reports.
func NewBuffer(s *Stream, bytes int, tag string) (*Buffer, error) {
	if bytes < 0 {
		return nil, newError(C.KILN_ERRC_INVALID_ARGUMENT, "kiln.NewBuffer", "a size of %d bytes", bytes)
	}
	f, hasTag := frameWithTag(tag)
	status := C.kiln_go_buffer_create(s.raw(), C.size_t(bytes), hasTag, f.c)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		err := takeError(&f.c.error)
		putFrame(f)
		return nil, err
	}
	r := bufferRecords.get()
	*r = bufferRecord{handle: (*C.kiln_buffer)(f.c.handle), ptr: DevicePtr(f.c.address), size: bytes, device: s.device, tag: tag}
	putFrame(f)
	b := &Buffer{}
	b.record.Store(r)
	return b, nil
}

func (b *Buffer) open() *bufferRecord {
	if b == nil {
		return nil
	}
	return b.record.Load()
}

// Ptr is the buffer's device address (0 once closed).
func (b *Buffer) Ptr() DevicePtr {
	if r := b.open(); r != nil {
		return r.ptr
	}
	return 0
}

// Size is the buffer's size in bytes (0 once closed).
func (b *Buffer) Size() int {
	if r := b.open(); r != nil {
		return r.size
	}
	return 0
}

// Device is the buffer's CUDA ordinal (-1 once closed).
func (b *Buffer) Device() int {
	if r := b.open(); r != nil {
		return r.device
	}
	return -1
}

// Tag is the name the buffer was given ("" once closed).
func (b *Buffer) Tag() string {
	if r := b.open(); r != nil {
		return r.tag
	}
	return ""
}

// Close frees the buffer in order on its stream. Closing twice does nothing.
func (b *Buffer) Close() error {
	if b == nil {
		return nil
	}
	if r := b.record.Swap(nil); r != nil {
		C.kiln_buffer_destroy(r.handle)
		*r = bufferRecord{}
		bufferRecords.put(r)
	}
	return nil
}

// PoolStats are the counters of a device's memory pool.
type PoolStats struct {
	InUse, Peak, Reserved, Allocations, Deallocations uint64
}

// DevicePoolStats are the counters of the pool NewBuffer draws from on a device.
func DevicePoolStats(device int) (PoolStats, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	s := &f.c.pool_stats
	s.size = C.size_t(unsafe.Sizeof(*s))
	if C.kiln_device_pool_stats(C.int(device), s, &f.c.error) != C.KILN_OK {
		return PoolStats{}, takeError(&f.c.error)
	}
	return PoolStats{uint64(s.in_use), uint64(s.peak), uint64(s.reserved), uint64(s.allocations), uint64(s.deallocations)}, nil
}
