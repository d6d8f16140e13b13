package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Scalar is an element type whose bytes can be copied to and from device memory as they are.
type Scalar interface {
	~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~int | ~uint | ~uintptr |
		~float32 | ~float64 | ~complex64 | ~complex128
}

func byteSize[T Scalar](s []T) int {
	var zero T
	return len(s) * int(unsafe.Sizeof(zero))
}

// CopyToDevice copies src to dst in order on s and returns when src may be reused (pageable
// memory is staged through pinned buffers at close to pinned speed).
func CopyToDevice[T Scalar](s *Stream, dst DevicePtr, src []T) error {
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_copy_to_device(s.raw(), C.uint64_t(dst), unsafe.Pointer(unsafe.SliceData(src)), C.size_t(byteSize(src)), &f.c.error)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// CopyToHost copies len(dst) elements from src into dst in order on s (after the work enqueued
// before) and returns when dst holds them.
func CopyToHost[T Scalar](s *Stream, dst []T, src DevicePtr) error {
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_copy_to_host(s.raw(), unsafe.Pointer(unsafe.SliceData(dst)), C.uint64_t(src), C.size_t(byteSize(dst)), &f.c.error)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// AsyncHost is host memory an asynchronous copy may use after the call returns: a *Pinned
// block, *Managed memory, or a HostSpan of either.
type AsyncHost interface {
	hostSpan() (p unsafe.Pointer, size int, open bool)
}

// HostSpan is part of a *Pinned block or of *Managed memory.
type HostSpan struct {
	owner         AsyncHost
	offset, bytes int
}

// Span is bytes [offset, offset+n) of a pinned block.
func (b *Pinned) Span(offset, n int) HostSpan { return HostSpan{b, offset, n} }

// Span is bytes [offset, offset+n) of managed memory.
func (m *Managed) Span(offset, n int) HostSpan { return HostSpan{m, offset, n} }

func (h HostSpan) hostSpan() (unsafe.Pointer, int, bool) {
	p, size, open := h.owner.hostSpan()
	if h.offset < 0 || h.bytes < 0 || h.offset+h.bytes > size {
		return nil, -1, open
	}
	return unsafe.Add(p, h.offset), h.bytes, open
}

// hostRange checks an AsyncHost: open and in bounds.
func hostRange(call string, h AsyncHost) (unsafe.Pointer, int, error) {
	if h == nil {
		return nil, 0, newError(C.KILN_ERRC_INVALID_HANDLE, call, "the host memory is nil")
	}
	p, n, open := h.hostSpan()
	if !open {
		return nil, 0, newError(C.KILN_ERRC_INVALID_HANDLE, call, "the host memory (%T) is closed (or nil)", h)
	}
	if n < 0 {
		span := h.(HostSpan)
		_, size, _ := span.owner.hostSpan()
		return nil, 0, newError(C.KILN_ERRC_INVALID_ARGUMENT, call, "the span [%d, %d) is outside the %d bytes of its %T",
			span.offset, span.offset+span.bytes, size, span.owner)
	}
	return p, n, nil
}

// CopyToDeviceAsync enqueues a copy of all of src (pinned or managed memory) to dst on s and
// returns at once: src must stay open and unchanged until the stream passes the copy.
func CopyToDeviceAsync(s *Stream, dst DevicePtr, src AsyncHost) error {
	const call = "kiln.CopyToDeviceAsync"
	p, n, err := hostRange(call, src)
	if err != nil {
		return err
	}
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_copy_to_device_async(s.raw(), C.uint64_t(dst), p, C.size_t(n), &f.c.error)
	runtime.KeepAlive(s)
	runtime.KeepAlive(src)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// CopyToHostAsync enqueues a copy filling all of dst (pinned or managed memory) from src on s and
// returns at once: dst holds the data once the stream passes the copy.
func CopyToHostAsync(s *Stream, dst AsyncHost, src DevicePtr) error {
	const call = "kiln.CopyToHostAsync"
	p, n, err := hostRange(call, dst)
	if err != nil {
		return err
	}
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_copy_to_host_async(s.raw(), p, C.uint64_t(src), C.size_t(n), &f.c.error)
	runtime.KeepAlive(s)
	runtime.KeepAlive(dst)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// Memset enqueues setting `bytes` bytes at dst to value, on s.
func Memset(s *Stream, dst DevicePtr, value byte, bytes int) error {
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_memset_async(s.raw(), C.uint64_t(dst), C.uchar(value), C.size_t(bytes), &f.c.error)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}
