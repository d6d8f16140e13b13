package kiln

/*
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Module is an image loaded on one device. Its kernels keep its code loaded, so it may be closed
// before them.
type Module struct {
	handle cHandle
	device int
}

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
	m := &Module{device: device}
	m.handle.store(unsafe.Pointer(h))
	runtime.SetFinalizer(m, (*Module).finalize)
	return m, nil
}

func (m *Module) raw() *C.kiln_module {
	if m == nil {
		return nil
	}
	return (*C.kiln_module)(m.handle.load())
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
	k := &Kernel{name: name, device: int(C.kiln_kernel_device(h))}
	k.handle.store(unsafe.Pointer(h))
	runtime.SetFinalizer(k, (*Kernel).finalize)
	return k, nil
}

// Close releases the module; its kernels stay usable. Closing twice does nothing.
func (m *Module) Close() error {
	if m == nil {
		return nil
	}
	if h := (*C.kiln_module)(m.handle.take()); h != nil {
		runtime.SetFinalizer(m, nil)
		C.kiln_module_destroy(h)
	}
	return nil
}

func (m *Module) finalize() {
	if h := (*C.kiln_module)(m.handle.take()); h != nil {
		reportLeak("kiln.Module of device %d", m.device)
		C.kiln_module_destroy(h)
	}
}

// Kernel is a function of a loaded module, ready to launch from any goroutine.
type Kernel struct {
	handle cHandle
	name   string
	device int
}

func (k *Kernel) raw() *C.kiln_kernel {
	if k == nil {
		return nil
	}
	return (*C.kiln_kernel)(k.handle.load())
}

// Name is the name the kernel was found by.
func (k *Kernel) Name() string {
	if k == nil {
		return ""
	}
	return k.name
}

// Device is the kernel's CUDA ordinal (-1 for a nil kernel).
func (k *Kernel) Device() int {
	if k == nil {
		return -1
	}
	return k.device
}

// Params are the sizes in bytes of the kernel's parameters, in order.
func (k *Kernel) Params() ([]int, error) {
	for capacity := frameArgumentCount; ; {
		f := getFrame(capacity, 0)
		var count C.size_t
		status := C.kiln_kernel_params(k.raw(), f.c.sizes, f.c.size_capacity, &count, &f.c.error)
		runtime.KeepAlive(k)
		if status != C.KILN_OK {
			err := takeError(&f.c.error)
			putFrame(f)
			return nil, err
		}
		if count <= f.c.size_capacity {
			out := make([]int, int(count))
			for i, size := range unsafe.Slice(f.c.sizes, int(count)) {
				out[i] = int(size)
			}
			putFrame(f)
			return out, nil
		}
		capacity = int(count) // more parameters than the frame holds: again, with room for all
		putFrame(f)
	}
}

// Close releases the kernel. Closing twice does nothing.
func (k *Kernel) Close() error {
	if k == nil {
		return nil
	}
	if h := (*C.kiln_kernel)(k.handle.take()); h != nil {
		runtime.SetFinalizer(k, nil)
		C.kiln_kernel_destroy(h)
	}
	return nil
}

func (k *Kernel) finalize() {
	if h := (*C.kiln_kernel)(k.handle.take()); h != nil {
		reportLeak("kiln.Kernel %q of device %d", k.name, k.device)
		C.kiln_kernel_destroy(h)
	}
}
