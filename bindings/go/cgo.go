package kiln

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -lkiln
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// The frames' sizes array is written from Go as []uintptr: both must be one machine word.
var _ = [1]struct{}{}[unsafe.Sizeof(C.size_t(0))-unsafe.Sizeof(uintptr(0))]

// A callFrame is one cgo call's C memory (kiln_go_call): its error, its outputs and a launch's
// arguments. Frames are pooled, so a call's outputs never move Go values to the heap and no Go
// pointer ever reaches C.
type callFrame struct{ c *C.kiln_go_call }

// What a pooled frame holds: enough for any launch but those with more than 64 arguments or 4 KiB
// of them (those get a frame of their own).
const (
	frameArgumentCount = 64
	frameArgumentBytes = 4096
)

var framePool = sync.Pool{New: func() any { return newFrame(frameArgumentCount, frameArgumentBytes) }}

func newFrame(arguments, bytes int) *callFrame {
	c := C.kiln_go_call_new(C.size_t(arguments), C.size_t(bytes))
	if c == nil {
		panic("kiln: no host memory for a call frame")
	}
	f := &callFrame{c: c}
	// The pool drops frames at garbage collections; their C memory goes with them.
	runtime.SetFinalizer(f, (*callFrame).free)
	return f
}

func (f *callFrame) free() {
	C.kiln_go_call_free(f.c)
	f.c = nil
}

// getFrame returns a frame with room for `arguments` arguments in `bytes` bytes.
func getFrame(arguments, bytes int) *callFrame {
	if arguments <= frameArgumentCount && bytes <= frameArgumentBytes {
		return framePool.Get().(*callFrame)
	}
	return newFrame(arguments, bytes)
}

// putFrame gives a frame back: to the pool, or to C when it was made for one large call.
func putFrame(f *callFrame) {
	if f.c.size_capacity == frameArgumentCount && f.c.byte_capacity == frameArgumentBytes {
		framePool.Put(f)
		return
	}
	runtime.SetFinalizer(f, nil)
	f.free()
}

// frameWithTag returns a frame holding `tag` NUL-terminated in its argument bytes, and whether
// there is a tag at all (an empty one is passed as NULL).
func frameWithTag(tag string) (*callFrame, C.int) {
	f := getFrame(0, len(tag)+1)
	if tag == "" {
		return f, 0
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(f.c.arguments)), len(tag)+1)
	copy(b, tag)
	b[len(tag)] = 0
	return f, 1
}

// cgoNoop is an empty C function: what one cgo call costs by itself.
func cgoNoop() { C.kiln_go_noop() }
