package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Domain says which table an error code belongs to.
type Domain int

// The domains of kiln_status.
const (
	DomainDriver Domain = C.KILN_ERROR_DRIVER // a CUresult of the CUDA driver API
	DomainNVRTC  Domain = C.KILN_ERROR_NVRTC  // an nvrtcResult
	DomainNVML   Domain = C.KILN_ERROR_NVML   // an nvmlReturn_t
	DomainKiln   Domain = C.KILN_ERROR_KILN   // one of kiln's own codes
	// An nvJitLinkResult of the device-code linker.
	DomainNVJitLink Domain = C.KILN_ERROR_NVJITLINK
)

// String names the domain.
func (d Domain) String() string {
	switch d {
	case DomainDriver:
		return "driver"
	case DomainNVRTC:
		return "nvrtc"
	case DomainNVML:
		return "nvml"
	case DomainKiln:
		return "kiln"
	case DomainNVJitLink:
		return "nvjitlink"
	}
	return fmt.Sprintf("domain(%d)", int(d))
}

// Error is every failure kiln reports: the code in its domain, its symbolic name, the whole story
// (the failing call, what the code means, the context) and what to do about it.
//
// Compare with errors.Is against the sentinels (ErrIllegalAddress, ErrTimeout, ...): two errors
// are the same when their domain and code are. A wait abandoned because its context was done also
// satisfies errors.Is(err, context.DeadlineExceeded) or context.Canceled.
type Error struct {
	Domain      Domain
	Code        int
	Name        string       // "CUDA_ERROR_ILLEGAL_ADDRESS"
	Message     string       // the whole story, hint included
	Hint        string       // what to do, on its own; may be empty
	Call        string       // the failing function ("cuLaunchKernel", "kiln_launch")
	Diagnostics []Diagnostic // what the compiler said, for ErrCompileFailed
	sticky      bool
	context     error // context.DeadlineExceeded or context.Canceled for abandoned waits
}

// Error returns the message, with the hint when the message does not already hold it.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Name
	}
	if e.Hint != "" && !strings.Contains(msg, e.Hint) {
		msg += " (hint: " + e.Hint + ")"
	}
	return msg
}

// Is reports whether target is an *Error of the same domain and code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Domain == e.Domain && t.Code == e.Code
}

// Unwrap returns the context's error for a wait or a call abandoned because its context was done.
func (e *Error) Unwrap() error { return e.context }

// Sticky reports whether the CUDA context is unusable after this error: only a new process
// recovers (an illegal address, say).
func (e *Error) Sticky() bool { return e.sticky }

func sentinel(d Domain, code int, name string) *Error {
	return &Error{Domain: d, Code: code, Name: name}
}

// kiln's own codes.
var (
	ErrDriverNotFound  = sentinel(DomainKiln, C.KILN_ERRC_DRIVER_NOT_FOUND, "KILN_ERROR_DRIVER_NOT_FOUND")
	ErrNVRTCNotFound   = sentinel(DomainKiln, C.KILN_ERRC_NVRTC_NOT_FOUND, "KILN_ERROR_NVRTC_NOT_FOUND")
	ErrNVMLNotFound    = sentinel(DomainKiln, C.KILN_ERRC_NVML_NOT_FOUND, "KILN_ERROR_NVML_NOT_FOUND")
	ErrSymbolMissing   = sentinel(DomainKiln, C.KILN_ERRC_SYMBOL_MISSING, "KILN_ERROR_SYMBOL_MISSING")
	ErrDriverTooOld    = sentinel(DomainKiln, C.KILN_ERRC_DRIVER_TOO_OLD, "KILN_ERROR_DRIVER_TOO_OLD")
	ErrInvalidArgument = sentinel(DomainKiln, C.KILN_ERRC_INVALID_ARGUMENT, "KILN_ERROR_INVALID_ARGUMENT")
	ErrVersionMismatch = sentinel(DomainKiln, C.KILN_ERRC_VERSION_MISMATCH, "KILN_ERROR_VERSION_MISMATCH")
	ErrCompileFailed   = sentinel(DomainKiln, C.KILN_ERRC_COMPILE_FAILED, "KILN_ERROR_COMPILE_FAILED")
	ErrInvalidHandle   = sentinel(DomainKiln, C.KILN_ERRC_INVALID_HANDLE, "KILN_ERROR_INVALID_HANDLE")
	ErrTimeout         = sentinel(DomainKiln, C.KILN_ERRC_TIMEOUT, "KILN_ERROR_TIMEOUT")
	ErrInternal        = sentinel(DomainKiln, C.KILN_ERRC_INTERNAL, "KILN_ERROR_INTERNAL")
	ErrUnavailable     = sentinel(DomainKiln, C.KILN_ERRC_UNAVAILABLE, "KILN_ERROR_UNAVAILABLE")
	ErrCancelled       = sentinel(DomainKiln, C.KILN_ERRC_CANCELLED, "KILN_ERROR_CANCELLED")
	// nvJitLink is not installed: only linking (Cache.CompileAndLink) fails.
	ErrNVJitLinkNotFound = sentinel(DomainKiln, C.KILN_ERRC_NVJITLINK_NOT_FOUND, "KILN_ERROR_NVJITLINK_NOT_FOUND")
	// nvJitLink refused a link; Diagnostics name each undefined or duplicate symbol and its input.
	ErrLinkFailed = sentinel(DomainKiln, C.KILN_ERRC_LINK_FAILED, "KILN_ERROR_LINK_FAILED")
)

// The CUDA driver's codes a program most often tests for.
var (
	ErrInvalidValue         = sentinel(DomainDriver, 1, "CUDA_ERROR_INVALID_VALUE")
	ErrOutOfMemory          = sentinel(DomainDriver, 2, "CUDA_ERROR_OUT_OF_MEMORY")
	ErrNoDevice             = sentinel(DomainDriver, 100, "CUDA_ERROR_NO_DEVICE")
	ErrInvalidDevice        = sentinel(DomainDriver, 101, "CUDA_ERROR_INVALID_DEVICE")
	ErrInvalidImage         = sentinel(DomainDriver, 200, "CUDA_ERROR_INVALID_IMAGE")
	ErrNoBinaryForGPU       = sentinel(DomainDriver, 209, "CUDA_ERROR_NO_BINARY_FOR_GPU")
	ErrECCUncorrectable     = sentinel(DomainDriver, 214, "CUDA_ERROR_ECC_UNCORRECTABLE")
	ErrInvalidPTX           = sentinel(DomainDriver, 218, "CUDA_ERROR_INVALID_PTX")
	ErrUnsupportedPTX       = sentinel(DomainDriver, 222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION")
	ErrNotFound             = sentinel(DomainDriver, 500, "CUDA_ERROR_NOT_FOUND")
	ErrIllegalAddress       = sentinel(DomainDriver, 700, "CUDA_ERROR_ILLEGAL_ADDRESS")
	ErrLaunchOutOfResources = sentinel(DomainDriver, 701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES")
	ErrLaunchTimeout        = sentinel(DomainDriver, 702, "CUDA_ERROR_LAUNCH_TIMEOUT")
	ErrAssert               = sentinel(DomainDriver, 710, "CUDA_ERROR_ASSERT")
	ErrIllegalInstruction   = sentinel(DomainDriver, 715, "CUDA_ERROR_ILLEGAL_INSTRUCTION")
	ErrMisalignedAddress    = sentinel(DomainDriver, 716, "CUDA_ERROR_MISALIGNED_ADDRESS")
	ErrLaunchFailed         = sentinel(DomainDriver, 719, "CUDA_ERROR_LAUNCH_FAILED")
)

// takeError turns a filled kiln_error into an *Error and releases what the C one holds.
func takeError(e *C.kiln_error) *Error {
	err := &Error{
		Domain:  Domain(e.domain),
		Code:    int(e.code),
		Name:    goString(e.name),
		Message: goString(e.message),
		Hint:    goString(e.hint),
		Call:    goString(e.call),
		sticky:  e.sticky != 0,
	}
	C.kiln_error_clear(e)
	return err
}

func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// tableEntry is what kiln's error table says about one of its own codes.
type tableEntry struct {
	name, description, hint string
	sticky                  bool
}

// The entries are asked of the library once each: the errors the Go side finds itself get their
// names, meanings, hints and stickiness from the same table as the library's.
var errorTable struct {
	sync.Mutex
	entries map[C.kiln_errc]tableEntry
}

func lookupKilnCode(code C.kiln_errc) tableEntry {
	errorTable.Lock()
	defer errorTable.Unlock()
	if e, ok := errorTable.entries[code]; ok {
		return e
	}
	var ce C.kiln_error
	e := tableEntry{name: fmt.Sprintf("kiln error %d", int(code))}
	if C.kiln_error_lookup(C.KILN_ERROR_KILN, C.int(code), &ce) == C.KILN_OK {
		e = tableEntry{goString(ce.name), goString(ce.message), goString(ce.hint), ce.sticky != 0}
	}
	C.kiln_error_clear(&ce)
	if errorTable.entries == nil {
		errorTable.entries = map[C.kiln_errc]tableEntry{}
	}
	errorTable.entries[code] = e
	return e
}

// newError builds an error the Go side found before calling the library, worded as the library
// words its own: "NAME (code): meaning", then "call: what was wrong", then "Hint: ...".
func newError(code C.kiln_errc, call, format string, args ...any) *Error {
	t := lookupKilnCode(code)
	msg := fmt.Sprintf("%s (%d): %s\n%s: %s", t.name, int(code), t.description, call, fmt.Sprintf(format, args...))
	if t.hint != "" {
		msg += "\nHint: " + t.hint
	}
	return &Error{Domain: DomainKiln, Code: int(code), Name: t.name, Message: msg, Hint: t.hint, Call: call, sticky: t.sticky}
}

// contextError is the error of a call not made because its context was already done.
func contextError(call string, ctxErr error) *Error {
	code := C.kiln_errc(C.KILN_ERRC_CANCELLED)
	if ctxErr == context.DeadlineExceeded {
		code = C.KILN_ERRC_TIMEOUT
	}
	e := newError(code, call, "not started: the context was already done (%v)", ctxErr)
	e.context = ctxErr
	return e
}

// refuseNul refuses text holding a NUL byte, which C would silently cut there.
func refuseNul(call, what, s string) error {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return newError(C.KILN_ERRC_INVALID_ARGUMENT, call, "%s %q holds a NUL byte at offset %d", what, s, i)
	}
	return nil
}

// LookupError is kiln's table entry for a code: its name, what it means (the Message), the hint
// and whether it is sticky. An unknown code is an ErrInvalidArgument.
func LookupError(d Domain, code int) (*Error, error) {
	var ce C.kiln_error
	if C.kiln_error_lookup(C.kiln_status(d), C.int(code), &ce) != C.KILN_OK {
		return nil, takeError(&ce)
	}
	return takeError(&ce), nil
}
