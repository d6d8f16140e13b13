package kiln

/*
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Every owner has a finalizer, only as a safety net: the garbage collector must never be what
// frees GPU memory, so an owner found unreachable before Close is freed (kiln makes the right CUDA
// context current itself) and reported loudly as a leak.

// reportLeak counts a leak and prints "kiln: LEAK: <what> was garbage-collected without Close()".
func reportLeak(format string, args ...any) {
	what := C.CString(fmt.Sprintf(format, args...) + " was garbage-collected without Close()")
	C.kiln_report_leak(what)
	C.free(unsafe.Pointer(what))
}

// LeaksReported is the number of owners found unreachable before Close, so far in this process
// (kiln_leaks_reported: the Go binding's finalizers and any other binding's).
func LeaksReported() uint64 { return uint64(C.kiln_leaks_reported()) }

// AllocationReport lists every live kiln allocation, one line each (what the leak report at exit
// prints), and their total bytes.
func AllocationReport() (text string, liveBytes uint64, err error) {
	var t *C.char
	var live C.uint64_t
	f := getFrame(0, 0)
	defer putFrame(f)
	if C.kiln_allocation_report(&t, &live, &f.c.error) != C.KILN_OK {
		return "", 0, takeError(&f.c.error)
	}
	defer C.kiln_free(unsafe.Pointer(t))
	return goString(t), uint64(live), nil
}
