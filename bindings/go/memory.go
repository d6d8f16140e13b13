package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
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
	handle cHandle
	ptr    DevicePtr
	size   int
	device int
	tag    string
	stream *Stream // reachable while the buffer is: it is freed in order on this stream
}

// NewBuffer allocates device memory in order on s, on s's device; the tag names it in leak and
// allocation reports.
func NewBuffer(s *Stream, bytes int, tag string) (*Buffer, error) {
	if bytes < 0 {
		return nil, newError(C.KILN_ERRC_INVALID_ARGUMENT, "kiln.NewBuffer", "a size of %d bytes", bytes)
	}
	f, hasTag := frameWithTag(tag)
	defer putFrame(f)
	status := C.kiln_go_buffer_create(s.raw(), C.size_t(bytes), hasTag, f.c)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	b := &Buffer{ptr: DevicePtr(f.c.address), size: bytes, device: s.device, tag: tag, stream: s}
	b.handle.store(f.c.handle)
	runtime.SetFinalizer(b, (*Buffer).finalize)
	return b, nil
}

func (b *Buffer) raw() *C.kiln_buffer {
	if b == nil {
		return nil
	}
	return (*C.kiln_buffer)(b.handle.load())
}

// Ptr is the buffer's device address.
func (b *Buffer) Ptr() DevicePtr { return b.ptr }

// Size is the buffer's size in bytes.
func (b *Buffer) Size() int { return b.size }

// Device is the buffer's CUDA ordinal.
func (b *Buffer) Device() int { return b.device }

// Tag is the name the buffer was given.
func (b *Buffer) Tag() string { return b.tag }

// Close frees the buffer in order on its stream. Closing twice does nothing.
func (b *Buffer) Close() error {
	if b == nil {
		return nil
	}
	if h := (*C.kiln_buffer)(b.handle.take()); h != nil {
		runtime.SetFinalizer(b, nil)
		C.kiln_buffer_destroy(h)
	}
	return nil
}

func (b *Buffer) finalize() {
	if h := (*C.kiln_buffer)(b.handle.take()); h != nil {
		reportLeak("kiln.Buffer of %d bytes (tag %q)", b.size, b.tag)
		C.kiln_buffer_destroy(h)
	}
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
