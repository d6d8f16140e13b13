package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Severity is how serious a diagnostic is.
type Severity int

// The severities NVRTC gives.
const (
	SeverityRemark  Severity = C.KILN_SEVERITY_REMARK
	SeverityWarning Severity = C.KILN_SEVERITY_WARNING
	SeverityError   Severity = C.KILN_SEVERITY_ERROR
	SeverityFatal   Severity = C.KILN_SEVERITY_FATAL
)

// String is the word compilers print: "remark", "warning", "error", "fatal error".
func (s Severity) String() string {
	switch s {
	case SeverityRemark:
		return "remark"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	case SeverityFatal:
		return "fatal error"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// Diagnostic is one thing the compiler said about the program.
type Diagnostic struct {
	File       string
	Line       int // 1-based; 0 when unknown
	Column     int // 1-based; 0 when unknown
	Severity   Severity
	Code       string // NVRTC's number, "177-D"; may be empty
	Message    string
	SourceLine string
	Formatted  string // "file:line:col: error: message", the line and a caret
}

// String is the compiler-style form.
func (d Diagnostic) String() string { return d.Formatted }

// takeDiagnostics copies `count` diagnostics out of C and destroys them.
func takeDiagnostics(d *C.kiln_diagnostics, count int) []Diagnostic {
	if d == nil {
		return nil
	}
	defer C.kiln_diagnostics_destroy(d)
	if count == 0 {
		return nil
	}
	entries := make([]C.kiln_diagnostic, count)
	count = min(count, int(C.kiln_go_diagnostics_read(d, unsafe.SliceData(entries), C.size_t(count))))
	out := make([]Diagnostic, count)
	for i, c := range entries[:count] {
		out[i] = Diagnostic{
			File:       goString(c.file),
			Line:       int(c.line),
			Column:     int(c.column),
			Severity:   Severity(c.severity),
			Code:       goString(c.code),
			Message:    goString(c.message),
			SourceLine: goString(c.source_line),
			Formatted:  goString(c.formatted),
		}
	}
	return out
}
