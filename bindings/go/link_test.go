package kiln

import (
	"bytes"
	"testing"
)

// Linking with the real NVRTC and nvJitLink (both run without a GPU): a kernel linked with a
// device library from source, cached, keyed by the library's content; link errors name the symbol.

const libraryHeader = "#pragma once\nextern \"C\" __device__ float scale_add(float a, float x, float y);\n"

func scaleAddLibrary(t *testing.T, body string) *DeviceLibrary {
	t.Helper()
	l, err := NewDeviceLibrary(Program{Name: "scale_add.cu", Source: "extern \"C\" __device__ float scale_add(float a, float x, float y) { return " + body + "; }\n",
		Headers: []Header{{Name: "scale_add.cuh", Source: libraryHeader}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

const linkedCaller = `#include "scale_add.cuh"
extern "C" __global__ void linked_saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = scale_add(a, x[i], y[i]);
}
`

func TestCompileAndLinkWithADeviceLibrary(t *testing.T) {
	c := newTestCache(t, "")
	ctx := testContext(t)
	lib := scaleAddLibrary(t, "a * x + y")
	image, err := c.CompileAndLink(ctx, Program{Name: "caller.cu", Source: linkedCaller}, []*DeviceLibrary{lib}, Target{Cubin, 90})
	if err != nil {
		t.Fatal(err)
	}
	defer image.Close()
	if !bytes.HasPrefix(image.Data(), []byte("\x7fELF")) || image.Origin() != OriginCompiled {
		t.Fatalf("origin %v, data % x", image.Origin(), image.Data()[:8])
	}
	again, err := c.CompileAndLink(ctx, Program{Name: "caller.cu", Source: linkedCaller}, []*DeviceLibrary{lib}, Target{Cubin, 90})
	if err != nil || again.Origin() != OriginMemory || again.Key() != image.Key() {
		t.Fatalf("the same link again: %v, origin %v", err, again.Origin())
	}
	again.Close()
	other, err := c.CompileAndLink(ctx, Program{Name: "caller.cu", Source: linkedCaller},
		[]*DeviceLibrary{scaleAddLibrary(t, "a * x - y")}, Target{Cubin, 90})
	if err != nil || other.Key() == image.Key() {
		t.Fatalf("another library's content must be another key: %v", err)
	}
	other.Close()
}

func TestLinkRefusals(t *testing.T) {
	c := newTestCache(t, "")
	ctx := testContext(t)
	lib := scaleAddLibrary(t, "a * x + y")
	lonely := Program{Name: "lonely.cu", Source: "extern \"C\" __device__ float nobody_defines_this(float x);\n" +
		"extern \"C\" __global__ void lonely(float* y) { y[0] = nobody_defines_this(y[0]); }\n"}
	_, err := c.CompileAndLink(ctx, lonely, []*DeviceLibrary{lib}, Target{Cubin, 90})
	e := wantError(t, err, ErrLinkFailed, "nobody_defines_this")
	found := false
	for _, d := range e.Diagnostics {
		found = found || d.Code == "undefined_symbol"
	}
	if !found {
		t.Fatalf("no undefined_symbol diagnostic: %+v", e.Diagnostics)
	}
	_, err = c.CompileAndLink(ctx, lonely, nil, Target{Cubin, 90})
	wantError(t, err, ErrInvalidArgument, "no libraries")
	closed := scaleAddLibrary(t, "a")
	closed.Close()
	_, err = c.CompileAndLink(ctx, Program{Name: "caller.cu", Source: linkedCaller}, []*DeviceLibrary{lib, closed}, Target{Cubin, 90})
	wantError(t, err, ErrInvalidArgument, "libraries[1]")
}
