package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"encoding/binary"
	"math"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// Dim3 is a grid or block shape; a zero dimension is read as 1, so Dim3{X: 256} is 256×1×1.
type Dim3 struct{ X, Y, Z uint32 }

// LaunchConfig is a launch's grid, block and dynamic shared memory.
type LaunchConfig struct {
	Grid               Dim3
	Block              Dim3
	DynamicSharedBytes uint32
	Cluster            Dim3 // thread-block cluster (sm_90+); the zero value is none
}

// Cover is a one-dimensional launch of enough blocks of blockSize threads to cover n elements.
func Cover(n int, blockSize uint32) LaunchConfig {
	blocks := (uint64(n) + uint64(blockSize) - 1) / uint64(blockSize)
	return LaunchConfig{Grid: Dim3{X: uint32(blocks)}, Block: Dim3{X: blockSize}}
}

// Bytes is a kernel argument given as its bytes: a struct the kernel takes by value, laid out as
// the kernel's C++ compiler lays it out.
type Bytes []byte

// Args is a kernel's argument list, for launches that must not allocate: keep one per goroutine,
// Reset it, add each argument in order, then pass it to Kernel.LaunchArgs. After its first use it
// allocates nothing. An Args is not safe for concurrent use.
//
// Each argument is packed at the next multiple of KILN_ARGUMENT_ALIGNMENT (8) bytes. The count
// and sizes are checked against the kernel's parameters by the library, which names the argument
// and both sizes when they differ.
type Args struct {
	packed []byte
	sizes  []uintptr
	refs   []argumentOwner
	err    error
}

// argumentOwner is an argument that is a kiln owner: kept reachable until the launch returns, and
// checked against the stream's device.
type argumentOwner struct {
	index  int
	kind   string // "*kiln.Buffer"
	device int    // -1: usable from any device
	owner  any
}

const argumentAlignment = C.KILN_ARGUMENT_ALIGNMENT

// Reset empties the list, keeping its memory.
func (a *Args) Reset() {
	a.packed = a.packed[:0]
	a.sizes = a.sizes[:0]
	clear(a.refs) // drop the owners: a pooled Args must not keep buffers reachable
	a.refs = a.refs[:0]
	a.err = nil
}

// Len is the number of arguments added.
func (a *Args) Len() int { return len(a.sizes) }

// next makes room for an argument of `size` bytes and returns it.
func (a *Args) next(size int) []byte {
	at := len(a.packed)
	padded := (size + argumentAlignment - 1) &^ (argumentAlignment - 1)
	a.packed = slices.Grow(a.packed, padded)[:at+padded]
	clear(a.packed[at:]) // the padding is zero
	a.sizes = append(a.sizes, uintptr(size))
	return a.packed[at : at+size]
}

func (a *Args) fail(code C.kiln_errc, format string, args ...any) *Args {
	if a.err == nil {
		a.err = newError(code, "kiln.Kernel.Launch", format, args...)
	}
	a.sizes = append(a.sizes, 0) // later arguments keep their indices
	return a
}

// Int8 adds a signed char argument.
func (a *Args) Int8(v int8) *Args { a.next(1)[0] = byte(v); return a }

// Uint8 adds an unsigned char argument.
func (a *Args) Uint8(v uint8) *Args { a.next(1)[0] = v; return a }

// Bool adds a bool argument.
func (a *Args) Bool(v bool) *Args {
	var b byte
	if v {
		b = 1
	}
	return a.Uint8(b)
}

// Int16 adds a short argument.
func (a *Args) Int16(v int16) *Args { return a.Uint16(uint16(v)) }

// Uint16 adds an unsigned short argument.
func (a *Args) Uint16(v uint16) *Args { binary.NativeEndian.PutUint16(a.next(2), v); return a }

// Int32 adds an int argument.
func (a *Args) Int32(v int32) *Args { return a.Uint32(uint32(v)) }

// Uint32 adds an unsigned int argument.
func (a *Args) Uint32(v uint32) *Args { binary.NativeEndian.PutUint32(a.next(4), v); return a }

// Int64 adds a long long argument.
func (a *Args) Int64(v int64) *Args { return a.Uint64(uint64(v)) }

// Uint64 adds an unsigned long long argument.
func (a *Args) Uint64(v uint64) *Args { binary.NativeEndian.PutUint64(a.next(8), v); return a }

// Float32 adds a float argument.
func (a *Args) Float32(v float32) *Args { return a.Uint32(math.Float32bits(v)) }

// Float64 adds a double argument.
func (a *Args) Float64(v float64) *Args { return a.Uint64(math.Float64bits(v)) }

// Ptr adds a device pointer argument.
func (a *Args) Ptr(p DevicePtr) *Args { return a.Uint64(uint64(p)) }

// Bytes adds an argument given as its bytes (a struct passed by value).
func (a *Args) Bytes(b []byte) *Args { copy(a.next(len(b)), b); return a }

// Buffer adds the device pointer of a buffer; the launch refuses a buffer of another device than
// the stream's, and a closed one.
func (a *Args) Buffer(b *Buffer) *Args {
	i := len(a.sizes)
	r := b.open()
	if r == nil {
		return a.fail(C.KILN_ERRC_INVALID_HANDLE, "argument %d is a *kiln.Buffer that is closed (or nil)", i)
	}
	a.refs = append(a.refs, argumentOwner{index: i, kind: "*kiln.Buffer", device: r.device, owner: b})
	return a.Ptr(r.ptr)
}

// Managed adds the device pointer of managed memory (usable from any device).
func (a *Args) Managed(m *Managed) *Args {
	i := len(a.sizes)
	if m.raw() == nil {
		return a.fail(C.KILN_ERRC_INVALID_HANDLE, "argument %d is a *kiln.Managed that is closed (or nil)", i)
	}
	a.refs = append(a.refs, argumentOwner{index: i, kind: "*kiln.Managed", device: -1, owner: m})
	return a.Ptr(m.ptr)
}

// Add adds an argument of any type a kernel can take: int8 to uint64, float32, float64, bool,
// uintptr, DevicePtr, *Buffer, *Managed, Bytes and byte arrays ([16]byte). A Go int is refused
// (its size is not the kernel's int): pass int32 or int64.
func (a *Args) Add(v any) *Args {
	switch x := v.(type) {
	case int32:
		return a.Int32(x)
	case uint32:
		return a.Uint32(x)
	case int64:
		return a.Int64(x)
	case uint64:
		return a.Uint64(x)
	case float32:
		return a.Float32(x)
	case float64:
		return a.Float64(x)
	case DevicePtr:
		return a.Ptr(x)
	case *Buffer:
		return a.Buffer(x)
	case *Managed:
		return a.Managed(x)
	case uintptr:
		return a.Uint64(uint64(x))
	case int8:
		return a.Int8(x)
	case uint8:
		return a.Uint8(x)
	case int16:
		return a.Int16(x)
	case uint16:
		return a.Uint16(x)
	case bool:
		return a.Bool(x)
	case Bytes:
		return a.Bytes(x)
	case int, uint:
		return a.fail(C.KILN_ERRC_INVALID_ARGUMENT,
			"argument %d is a Go %T, whose size (%d bytes) is not a C++ int's: pass int32 or int64", len(a.sizes), v, unsafe.Sizeof(0))
	case []byte:
		return a.fail(C.KILN_ERRC_INVALID_ARGUMENT,
			"argument %d is a []byte, which is host memory: pass kiln.Bytes(b) for its contents as a by-value argument, or a *kiln.Buffer", len(a.sizes))
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
		reflect.Copy(reflect.ValueOf(a.next(rv.Len())), rv)
		return a
	}
	return a.fail(C.KILN_ERRC_INVALID_ARGUMENT,
		"argument %d has type %T, which is not a kernel argument: pass a number, a DevicePtr, a *kiln.Buffer, or kiln.Bytes holding a struct's bytes", len(a.sizes), v)
}

var argsPool = sync.Pool{New: func() any { return new(Args) }}

// Launch enqueues the kernel on s with these arguments (see Args.Add for their types). It returns
// once the launch is enqueued; wait on the stream for its end.
func (k *Kernel) Launch(s *Stream, cfg LaunchConfig, args ...any) error {
	a := argsPool.Get().(*Args)
	a.Reset()
	for _, v := range args {
		a.Add(v)
	}
	err := k.LaunchArgs(s, cfg, a)
	a.Reset()
	argsPool.Put(a)
	return err
}

// LaunchArgs enqueues the kernel on s with an argument list built beforehand: one cgo call, no
// allocation.
func (k *Kernel) LaunchArgs(s *Stream, cfg LaunchConfig, a *Args) error {
	if a == nil {
		a = &Args{}
	}
	if a.err != nil {
		return a.err
	}
	stream := s.raw()
	if stream != nil && len(a.refs) > 0 {
		if err := checkArgumentDevices(s.device, a.refs); err != nil {
			return err
		}
	}
	f := getFrame(len(a.sizes), len(a.packed))
	c := f.c
	c.config.grid = [3]C.uint{C.uint(cfg.Grid.X), C.uint(cfg.Grid.Y), C.uint(cfg.Grid.Z)}
	c.config.block = [3]C.uint{C.uint(cfg.Block.X), C.uint(cfg.Block.Y), C.uint(cfg.Block.Z)}
	c.config.dynamic_shared_bytes = C.uint(cfg.DynamicSharedBytes)
	c.config.cluster = [3]C.uint{C.uint(cfg.Cluster.X), C.uint(cfg.Cluster.Y), C.uint(cfg.Cluster.Z)}
	c.config.size = C.size_t(unsafe.Sizeof(c.config))
	c.count = C.size_t(len(a.sizes))
	copy(unsafe.Slice((*uintptr)(unsafe.Pointer(c.sizes)), len(a.sizes)), a.sizes)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(c.arguments)), len(a.packed)), a.packed)
	status := C.kiln_go_launch(k.raw(), stream, c)
	runtime.KeepAlive(k)
	runtime.KeepAlive(s)
	runtime.KeepAlive(a) // and so the buffers it refers to
	var err error
	if status != C.KILN_OK {
		err = takeError(&c.error)
	}
	putFrame(f)
	return err
}

// checkArgumentDevices refuses device memory of another device than the stream's.
func checkArgumentDevices(streamDevice int, owners []argumentOwner) error {
	for _, o := range owners {
		if o.device >= 0 && o.device != streamDevice {
			return newError(C.KILN_ERRC_INVALID_ARGUMENT, "kiln.Kernel.Launch",
				"argument %d is a %s of device %d, but the stream is of device %d: launch on a stream of device %d, or copy the data to device %d first",
				o.index, o.kind, o.device, streamDevice, o.device, streamDevice)
		}
	}
	return nil
}
