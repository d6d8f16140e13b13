package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"context"
	"runtime"
	"time"
	"unsafe"
)

// Event marks a point in a stream's work: to wait for, to order another stream after, or, made
// with Timing, to measure time between two of them on the GPU.
type Event struct {
	handle cHandle
	device int
}

// EventFlags choose what an event can do.
type EventFlags uint

// Timing lets Elapsed measure between two events (it costs a little on every record).
const Timing EventFlags = C.KILN_EVENT_TIMING

// NewEvent makes an event on a device.
func NewEvent(device int, flags EventFlags) (*Event, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	var h *C.kiln_event
	if C.kiln_event_create(C.int(device), C.uint(flags), &h, &f.c.error) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	e := &Event{device: device}
	e.handle.store(unsafe.Pointer(h))
	runtime.SetFinalizer(e, (*Event).finalize)
	return e, nil
}

func (e *Event) raw() *C.kiln_event {
	if e == nil {
		return nil
	}
	return (*C.kiln_event)(e.handle.load())
}

// Device is the event's CUDA ordinal (-1 for a nil event).
func (e *Event) Device() int {
	if e == nil {
		return -1
	}
	return e.device
}

// Record marks the point in s's work enqueued so far.
func (e *Event) Record(s *Stream) error {
	f := getFrame(0, 0)
	defer putFrame(f)
	status := C.kiln_event_record(e.raw(), s.raw(), &f.c.error)
	runtime.KeepAlive(e)
	runtime.KeepAlive(s)
	if status != C.KILN_OK {
		return takeError(&f.c.error)
	}
	return nil
}

// Wait waits until the work before the recorded point is done, as long as ctx allows (see
// Stream.Wait for the errors).
func (e *Event) Wait(ctx context.Context) error {
	h := e.raw()
	err := waitWithContext(ctx, "kiln.Event.Wait", func(timeout C.int64_t, cancel *C.kiln_cancel, ce *C.kiln_error) C.kiln_status {
		return C.kiln_event_wait(h, timeout, cancel, ce)
	})
	runtime.KeepAlive(e)
	return err
}

// Elapsed is the GPU time between two recorded Timing events.
func Elapsed(start, end *Event) (time.Duration, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	var ms C.float
	status := C.kiln_event_elapsed_ms(start.raw(), end.raw(), &ms, &f.c.error)
	runtime.KeepAlive(start)
	runtime.KeepAlive(end)
	if status != C.KILN_OK {
		return 0, takeError(&f.c.error)
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}

// Close releases the event. Closing twice does nothing.
func (e *Event) Close() error {
	if e == nil {
		return nil
	}
	if h := (*C.kiln_event)(e.handle.take()); h != nil {
		runtime.SetFinalizer(e, nil)
		C.kiln_event_destroy(h)
	}
	return nil
}

func (e *Event) finalize() {
	if h := (*C.kiln_event)(e.handle.take()); h != nil {
		reportLeak("kiln.Event of device %d", e.device)
		C.kiln_event_destroy(h)
	}
}
