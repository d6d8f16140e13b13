package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
)

// Program is CUDA C++ source and how to compile it.
type Program struct {
	Name            string   // the file name diagnostics use; "": "kernel.cu"
	Source          string   // required
	Headers         []Header // in-memory headers, found by #include "name"
	IncludeDirs     []string // folders searched for #include (keyed by path, not content)
	NameExpressions []string // "scale<float>": their lowered names come back (Image.LoweredName)

	Standard              string   // "c++17"; "": NVRTC's default
	Defines               []string // "NAME" or "NAME=VALUE"
	LineInfo              bool
	FastMath              bool
	MaxRegisters          int // 0: no cap
	RelocatableDeviceCode bool
	Minimal               bool     // -minimal (NVRTC 12.4+): faster compiles of kernels that include no library
	ExtraOptions          []string // passed to NVRTC verbatim, in order
}

// Header is a header the program includes by name, given as text.
type Header struct {
	Name   string
	Source string
}

// A program reaches C as one block of bytes holding no Go pointer (the layout is kiln_go.h's
// kiln_go_program_field), decoded by kiln_go_compile: a compile is one cgo call.
var encodedPrograms = sync.Pool{New: func() any { return new(programEncoder) }}

type programEncoder struct {
	buf   []byte
	lists []uint64 // string fields of the lists, gathered before they are written
}

func (e *programEncoder) reset() {
	e.buf = e.buf[:0]
	e.lists = e.lists[:0]
}

func (e *programEncoder) put(field int, v uint64) { binary.LittleEndian.PutUint64(e.buf[8*field:], v) }

// str appends s NUL-terminated and returns its string field (offset + 1).
func (e *programEncoder) str(s string) uint64 {
	at := len(e.buf)
	e.buf = append(e.buf, s...)
	e.buf = append(e.buf, 0)
	return uint64(at) + 1
}

func (e *programEncoder) optionalStr(s string) uint64 {
	if s == "" {
		return 0
	}
	return e.str(s)
}

// list appends the strings and then their fields, and returns the offset of the fields.
func (e *programEncoder) list(items []string) uint64 {
	first := len(e.lists)
	for _, s := range items {
		e.lists = append(e.lists, e.str(s))
	}
	return e.fields(first)
}

func (e *programEncoder) fields(first int) uint64 {
	for len(e.buf)%8 != 0 {
		e.buf = append(e.buf, 0)
	}
	at := len(e.buf)
	for _, v := range e.lists[first:] {
		e.buf = binary.LittleEndian.AppendUint64(e.buf, v)
	}
	e.lists = e.lists[:first]
	return uint64(at)
}

func flag(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// encode writes p into e.buf; it refuses text with a NUL byte, which C would silently cut there.
func (e *programEncoder) encode(p *Program, call string) error {
	if err := p.checkNoNul(call); err != nil {
		return err
	}
	e.reset()
	e.buf = append(e.buf, make([]byte, 8*C.KILN_GO_PROGRAM_FIELDS)...)
	e.put(C.KILN_GO_PROGRAM_NAME, e.optionalStr(p.Name))
	e.put(C.KILN_GO_PROGRAM_SOURCE, e.str(p.Source))
	e.put(C.KILN_GO_PROGRAM_STANDARD, e.optionalStr(p.Standard))
	first := len(e.lists)
	for _, h := range p.Headers {
		e.lists = append(e.lists, e.str(h.Name), e.str(h.Source))
	}
	e.put(C.KILN_GO_PROGRAM_HEADER_COUNT, uint64(len(p.Headers)))
	e.put(C.KILN_GO_PROGRAM_HEADERS, e.fields(first))
	e.put(C.KILN_GO_PROGRAM_INCLUDE_DIR_COUNT, uint64(len(p.IncludeDirs)))
	e.put(C.KILN_GO_PROGRAM_INCLUDE_DIRS, e.list(p.IncludeDirs))
	e.put(C.KILN_GO_PROGRAM_NAME_EXPRESSION_COUNT, uint64(len(p.NameExpressions)))
	e.put(C.KILN_GO_PROGRAM_NAME_EXPRESSIONS, e.list(p.NameExpressions))
	e.put(C.KILN_GO_PROGRAM_DEFINE_COUNT, uint64(len(p.Defines)))
	e.put(C.KILN_GO_PROGRAM_DEFINES, e.list(p.Defines))
	e.put(C.KILN_GO_PROGRAM_EXTRA_OPTION_COUNT, uint64(len(p.ExtraOptions)))
	e.put(C.KILN_GO_PROGRAM_EXTRA_OPTIONS, e.list(p.ExtraOptions))
	e.put(C.KILN_GO_PROGRAM_LINE_INFO, flag(p.LineInfo))
	e.put(C.KILN_GO_PROGRAM_FAST_MATH, flag(p.FastMath))
	e.put(C.KILN_GO_PROGRAM_MAX_REGISTERS, uint64(uint32(int32(p.MaxRegisters))))
	e.put(C.KILN_GO_PROGRAM_RELOCATABLE_DEVICE_CODE, flag(p.RelocatableDeviceCode))
	e.put(C.KILN_GO_PROGRAM_MINIMAL, flag(p.Minimal))
	return nil
}

func (p *Program) checkNoNul(call string) error {
	check := func(what, s string) error {
		if i := strings.IndexByte(s, 0); i >= 0 {
			return newError(C.KILN_ERRC_INVALID_ARGUMENT, call, "%s holds a NUL byte at offset %d (NVRTC would stop reading there)", what, i)
		}
		return nil
	}
	checkAll := func(what string, items []string) error {
		for i, s := range items {
			if err := check(what+"["+strconv.Itoa(i)+"]", s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := check("Program.Name", p.Name); err != nil {
		return err
	}
	if err := check("Program.Source", p.Source); err != nil {
		return err
	}
	if err := check("Program.Standard", p.Standard); err != nil {
		return err
	}
	for i, h := range p.Headers {
		if err := check("Program.Headers["+strconv.Itoa(i)+"].Name", h.Name); err != nil {
			return err
		}
		if err := check("Program.Headers["+strconv.Itoa(i)+"].Source", h.Source); err != nil {
			return err
		}
	}
	if err := checkAll("Program.IncludeDirs", p.IncludeDirs); err != nil {
		return err
	}
	if err := checkAll("Program.NameExpressions", p.NameExpressions); err != nil {
		return err
	}
	if err := checkAll("Program.Defines", p.Defines); err != nil {
		return err
	}
	return checkAll("Program.ExtraOptions", p.ExtraOptions)
}
