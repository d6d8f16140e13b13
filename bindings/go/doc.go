// Package kiln runs NVRTC-compiled CUDA kernels from Go, through kiln's C ABI (libkiln.so,
// include/kiln/kiln.h).
//
//	img, err := kiln.Compile(ctx, kiln.Program{Name: "saxpy.cu", Source: src})
//	mod, err := kiln.LoadModule(img, 0)
//	saxpy, err := mod.Kernel("saxpy")
//	s, err := kiln.NewStream(0)
//	x, err := kiln.NewBuffer(s, n*4, "x")
//	err = kiln.CopyToDevice(s, x.Ptr(), hostX)
//	err = saxpy.Launch(s, kiln.Cover(n, 256), float32(2), x, y, int32(n))
//	err = s.Wait(ctx) // ctx's deadline and cancellation reach the wait
//
// Errors are *Error values: compare them with errors.Is against the sentinels (ErrIllegalAddress,
// ErrTimeout, ...); a compile failure carries structured Diagnostics.
//
// Lifetimes are explicit: every owner (Stream, Event, Module, Kernel, Buffer, Pinned, PinnedPool,
// Managed, Cache, Image) has a Close, which may be called twice; using an owner after Close fails
// with ErrInvalidHandle. The garbage collector never owns GPU memory: a finalizer frees an owner
// that was never closed, but reports it as a leak on stderr and in LeaksReported. Device
// addresses are DevicePtr values, never Go pointers; pinned host memory is a []byte over C memory,
// valid until its Close.
//
// Any goroutine may call anything: kiln makes the right CUDA context current inside each call, so
// no runtime.LockOSThread is needed. A launch, a compile that hits the cache and a copy are each
// one cgo call, with no callback into Go.
package kiln
