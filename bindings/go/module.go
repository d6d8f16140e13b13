package kiln

/*
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Module is an image loaded on one device. Its kernels are valid while it is open: closing the
// module closes them.
type Module struct {
	handle atomic.Pointer[C.kiln_module]
	device int

	mu      sync.Mutex
	kernels map[*kernelHandle]struct{}
}

// kernelHandle is a kernel's C handle, apart from the Kernel so that the module can close its
// kernels without referring to them (a module and its kernels referring to each other would never
// be garbage-collected: Go does not finalize cycles).
type kernelHandle struct{ p atomic.Pointer[C.kiln_kernel] }

// LoadModule loads an image on a device (into its primary context). The image may be closed
// afterwards.
func LoadModule(img *Image, device int) (*Module, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	var h *C.kiln_module
	status := C.kiln_module_load(img.raw(), C.int(device), &h, &f.c.error)
	runtime.KeepAlive(img)
	if status != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	m := &Module{device: device, kernels: map[*kernelHandle]struct{}{}}
	m.handle.Store(h)
	runtime.SetFinalizer(m, (*Module).finalize)
	return m, nil
}

func (m *Module) raw() *C.kiln_module {
	if m == nil {
		return nil
	}
	return m.handle.Load()
}

// Device is the module's CUDA ordinal (-1 for a nil module).
func (m *Module) Device() int {
	if m == nil {
		return -1
	}
	return m.device
}

// Kernel finds a kernel by its name or by a name expression the program listed.
func (m *Module) Kernel(name string) (*Kernel, error) {
	if err := refuseNul("kiln.Module.Kernel", "the kernel name", name); err != nil {
		return nil, err
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	f := getFrame(0, 0)
	defer putFrame(f)
	var h *C.kiln_kernel
	status := C.kiln_module_get_kernel(m.raw(), cname, &h, &f.c.error)
	runtime.KeepAlive(m)
	if status != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	k := &Kernel{h: &kernelHandle{}, module: m, name: name, device: int(C.kiln_kernel_device(h))}
	k.h.p.Store(h)
	m.mu.Lock()
	closed := m.kernels == nil // closed while the kernel was looked up
	if !closed {
		m.kernels[k.h] = struct{}{}
	}
	m.mu.Unlock()
	if closed {
		C.kiln_kernel_destroy(h)
		return nil, newError(C.KILN_ERRC_INVALID_HANDLE, "kiln.Module.Kernel", "the module was closed while kernel %q was looked up", name)
	}
	runtime.SetFinalizer(k, (*Kernel).finalize)
	return k, nil
}

// Close unloads the module and closes its kernels. Closing twice does nothing.
func (m *Module) Close() error {
	if m == nil {
		return nil
	}
	if h := m.handle.Swap(nil); h != nil {
		runtime.SetFinalizer(m, nil)
		m.release(h)
	}
	return nil
}

func (m *Module) release(h *C.kiln_module) {
	m.mu.Lock()
	for k := range m.kernels {
		if p := k.p.Swap(nil); p != nil {
			C.kiln_kernel_destroy(p)
		}
	}
	m.kernels = nil
	m.mu.Unlock()
	C.kiln_module_destroy(h)
}

func (m *Module) forget(k *kernelHandle) {
	m.mu.Lock()
	delete(m.kernels, k)
	m.mu.Unlock()
}

func (m *Module) finalize() {
	if h := m.handle.Swap(nil); h != nil {
		reportLeak("kiln.Module of device %d", m.device)
		m.release(h)
	}
}

// Kernel is a function of a loaded module, ready to launch from any goroutine.
type Kernel struct {
	h      *kernelHandle
	module *Module // kept reachable while the kernel is: the module must outlive it
	name   string
	device int
}

func (k *Kernel) raw() *C.kiln_kernel {
	if k == nil {
		return nil
	}
	return k.h.p.Load()
}

// Name is the name the kernel was found by.
func (k *Kernel) Name() string { return k.name }

// Device is the kernel's CUDA ordinal (-1 for a nil kernel).
func (k *Kernel) Device() int {
	if k == nil {
		return -1
	}
	return k.device
}

// Params are the sizes in bytes of the kernel's parameters, in order.
func (k *Kernel) Params() ([]int, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	sizes := unsafe.Slice(f.c.sizes, f.c.size_capacity)
	var count C.size_t
	status := C.kiln_kernel_params(k.raw(), f.c.sizes, f.c.size_capacity, &count, &f.c.error)
	if status == C.KILN_OK && int(count) > len(sizes) {
		big := getFrame(int(count), 0)
		defer putFrame(big)
		sizes = unsafe.Slice(big.c.sizes, big.c.size_capacity)
		status = C.kiln_kernel_params(k.raw(), big.c.sizes, big.c.size_capacity, &count, &f.c.error)
	}
	runtime.KeepAlive(k)
	if status != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	out := make([]int, int(count))
	for i := range out {
		out[i] = int(sizes[i])
	}
	return out, nil
}

// Close releases the kernel handle (the module stays). Closing twice does nothing.
func (k *Kernel) Close() error {
	if k == nil {
		return nil
	}
	if p := k.h.p.Swap(nil); p != nil {
		runtime.SetFinalizer(k, nil)
		k.module.forget(k.h)
		C.kiln_kernel_destroy(p)
	}
	return nil
}

func (k *Kernel) finalize() {
	if p := k.h.p.Swap(nil); p != nil {
		reportLeak("kiln.Kernel %q of device %d", k.name, k.device)
		k.module.forget(k.h)
		C.kiln_kernel_destroy(p)
	}
}
