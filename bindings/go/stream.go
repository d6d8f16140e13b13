package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"context"
	"runtime"
	"unsafe"
)

// Stream is a CUDA stream of one device: work on it runs in order. Any goroutine may use it;
// Close it when done (it must not race with other uses of it).
type Stream struct {
	handle cHandle
	device int
}

// NewStream makes a stream on a device, of the default priority.
func NewStream(device int) (*Stream, error) { return NewStreamWithPriority(device, 0) }

// NewStreamWithPriority makes a stream on a device; a lower number is a higher priority (CUDA's
// rule), clamped to the device's range.
func NewStreamWithPriority(device, priority int) (*Stream, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	var h *C.kiln_stream
	if C.kiln_stream_create(C.int(device), C.int(priority), &h, &f.c.error) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	s := &Stream{device: device}
	s.handle.store(unsafe.Pointer(h))
	runtime.SetFinalizer(s, (*Stream).finalize)
	return s, nil
}

// raw is the C handle: NULL for a nil or closed stream, which the library refuses by name.
func (s *Stream) raw() *C.kiln_stream {
	if s == nil {
		return nil
	}
	return (*C.kiln_stream)(s.handle.load())
}

// Device is the stream's CUDA ordinal (-1 for a nil stream).
func (s *Stream) Device() int {
	if s == nil {
		return -1
	}
	return s.device
}

// Synchronize waits for the work enqueued so far, without a deadline.
func (s *Stream) Synchronize() error {
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_stream_synchronize(s.raw(), &f.c.error)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// Wait waits for the work enqueued so far, as long as ctx allows. When ctx's deadline passes first
// it returns ErrTimeout (and context.DeadlineExceeded), when ctx is cancelled ErrCancelled (and
// context.Canceled); the message names the work still running, which nothing can stop.
func (s *Stream) Wait(ctx context.Context) error {
	h := s.raw()
	err := waitWithContext(ctx, "kiln.Stream.Wait", func(timeout C.int64_t, cancel *C.kiln_cancel, e *C.kiln_error) C.kiln_status {
		return C.kiln_stream_wait(h, timeout, cancel, e)
	})
	runtime.KeepAlive(s)
	return err
}

// WaitEvent makes later work on s wait for e (which may be of another device).
func (s *Stream) WaitEvent(e *Event) error {
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_stream_wait_event(s.raw(), e.raw(), &f.c.error)
	runtime.KeepAlive(s)
	runtime.KeepAlive(e)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// Close releases the stream: work already enqueued still completes. Closing twice does nothing.
func (s *Stream) Close() error {
	if s == nil {
		return nil
	}
	if h := (*C.kiln_stream)(s.handle.take()); h != nil {
		runtime.SetFinalizer(s, nil)
		C.kiln_stream_destroy(h)
	}
	return nil
}

func (s *Stream) finalize() {
	if h := (*C.kiln_stream)(s.handle.take()); h != nil {
		reportLeak("kiln.Stream of device %d", s.device)
		C.kiln_stream_destroy(h)
	}
}
