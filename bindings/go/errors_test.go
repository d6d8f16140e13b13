package kiln

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorsCompareByDomainAndCode(t *testing.T) {
	e := &Error{Domain: DomainDriver, Code: 700, Name: "CUDA_ERROR_ILLEGAL_ADDRESS", Message: "cuStreamSynchronize: an illegal address", sticky: true}
	wrapped := fmt.Errorf("request 7: %w", e)
	if !errors.Is(wrapped, ErrIllegalAddress) || errors.Is(wrapped, ErrLaunchFailed) {
		t.Fatal("errors.Is must compare domain and code only")
	}
	// The same number in another domain is another error.
	if errors.Is(&Error{Domain: DomainKiln, Code: 700}, ErrIllegalAddress) {
		t.Fatal("domains differ")
	}
	var got *Error
	if !errors.As(wrapped, &got) || !got.Sticky() {
		t.Fatal("errors.As or Sticky")
	}
	if ErrIllegalAddress.Sticky() {
		t.Fatal("a sentinel says nothing about stickiness")
	}
}

func TestErrorStringHoldsTheHintOnce(t *testing.T) {
	e := &Error{Name: "X", Message: "it failed", Hint: "do this"}
	if e.Error() != "it failed (hint: do this)" {
		t.Fatalf("%q", e.Error())
	}
	e.Message = "it failed. do this"
	if strings.Count(e.Error(), "do this") != 1 {
		t.Fatalf("%q", e.Error())
	}
	if ErrTimeout.Error() != "KILN_ERROR_TIMEOUT" {
		t.Fatalf("a sentinel's string is its name: %q", ErrTimeout.Error())
	}
}

func TestGoSideErrorsComeFromTheLibrarysTable(t *testing.T) {
	e := newError(9, "kiln.Example", "the %s is closed", "thing")
	if e.Name != "KILN_ERROR_INVALID_HANDLE" || e.Hint == "" || !errors.Is(e, ErrInvalidHandle) {
		t.Fatalf("%+v", e)
	}
	if !strings.HasPrefix(e.Message, "KILN_ERROR_INVALID_HANDLE (9): ") || !strings.Contains(e.Message, "\nkiln.Example: the thing is closed\nHint: ") ||
		!strings.Contains(e.Error(), e.Hint) {
		t.Fatalf("%q", e.Error())
	}
}

func TestContextErrorsUnwrapToTheContexts(t *testing.T) {
	timeout := contextError("kiln.Stream.Wait", context.DeadlineExceeded)
	if !errors.Is(timeout, ErrTimeout) || !errors.Is(timeout, context.DeadlineExceeded) || errors.Is(timeout, context.Canceled) {
		t.Fatalf("%v", timeout)
	}
	cancelled := contextError("kiln.Stream.Wait", context.Canceled)
	if !errors.Is(cancelled, ErrCancelled) || !errors.Is(cancelled, context.Canceled) {
		t.Fatalf("%v", cancelled)
	}
}

func TestInvalidTargetStrings(t *testing.T) {
	for text, want := range map[string]Target{"sm_90": {Cubin, 90}, "compute_90": {PTX, 90}, "90": {Cubin, 90}, "9.0": {Cubin, 90}, "sm_80": {Cubin, 80}} {
		got, err := ParseTarget(text)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %v", text, got, err, want)
		}
	}
	if (Target{PTX, 90}).String() != "compute_90" || (Target{Cubin, 86}).String() != "sm_86" {
		t.Error("Target.String")
	}
	for _, bad := range []string{"sm_abc", "", "compute_", "sm_90\x00x"} {
		_, err := ParseTarget(bad)
		wantError(t, err, ErrInvalidArgument)
	}
	_, err := ParseTarget("sm_abc")
	wantError(t, err, ErrInvalidArgument, "sm_abc")
}

// Nil owners reach the library as NULL handles, which it refuses by name.
func TestNilHandlesAreRefused(t *testing.T) {
	ctx := context.Background()
	var (
		s    *Stream
		e    *Event
		k    *Kernel
		m    *Module
		img  *Image
		c    *Cache
		pool *PinnedPool
		mg   *Managed
	)
	checks := map[string]error{
		"Stream.Synchronize": s.Synchronize(),
		"Stream.Wait":        s.Wait(ctx),
		"Stream.WaitEvent":   s.WaitEvent(e),
		"Event.Record":       e.Record(s),
		"Event.Wait":         e.Wait(ctx),
		"Kernel.Launch":      k.Launch(s, Cover(1, 1)),
		"CopyToDevice":       CopyToDevice(s, 0, []float32{1}),
		"CopyToHost":         CopyToHost(s, []float32{1}, 0),
		"Memset":             Memset(s, 0, 0, 4),
		"Managed.Prefetch":   mg.PrefetchToHost(s),
	}
	_, checks["Elapsed"] = Elapsed(e, e)
	_, checks["Module.Kernel"] = m.Kernel("saxpy")
	_, checks["Kernel.Params"] = k.Params()
	_, checks["LoadModule"] = LoadModule(img, 0)
	_, checks["Image.LoweredName"] = img.LoweredName("f")
	_, checks["Image.Diagnostics"] = img.Diagnostics()
	_, checks["Cache.Compile"] = c.Compile(ctx, Program{Source: emptySource}, Target{PTX, 90})
	_, checks["Cache.Stats"] = c.Stats()
	_, checks["NewBuffer"] = NewBuffer(s, 16, "nil stream")
	_, checks["PinnedPool.Alloc"] = pool.Alloc(16, "")
	_, checks["PinnedPool.Stats"] = pool.Stats()
	for what, err := range checks {
		t.Run(what, func(t *testing.T) { wantError(t, err, ErrInvalidHandle) })
	}
	// Closing a nil owner does nothing.
	for _, closer := range []interface{ Close() error }{s, e, k, m, img, c, pool, mg, (*Buffer)(nil), (*Pinned)(nil)} {
		if err := closer.Close(); err != nil {
			t.Errorf("%T.Close: %v", closer, err)
		}
	}
}

func TestClosedOwnersAreRefused(t *testing.T) {
	c := newTestCache(t, "")
	img, err := c.Compile(testContext(t), Program{Name: "fill.cu", Source: fillSource, NameExpressions: []string{"fill<3>"}}, Target{Cubin, 90})
	if err != nil {
		t.Fatal(err)
	}
	img.Close()
	img.Close() // twice: nothing
	if img.Data() != nil {
		t.Error("a closed image still shows its data")
	}
	_, err = img.LoweredName("fill<3>")
	wantError(t, err, ErrInvalidHandle)
	_, err = LoadModule(img, 0)
	wantError(t, err, ErrInvalidHandle)

	c.Close()
	c.Close()
	_, err = c.Compile(testContext(t), Program{Source: emptySource}, Target{PTX, 90})
	wantError(t, err, ErrInvalidHandle)
	_, err = c.Stats()
	wantError(t, err, ErrInvalidHandle)

	pool, err := NewPinnedPool(0, HostPlain, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Alloc(64, "closed")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close()
	if b.Bytes() != nil {
		t.Error("a closed block still shows its memory")
	}
	err = CopyToDeviceAsync(nil, 0, b)
	wantError(t, err, ErrInvalidHandle, "*kiln.Pinned", "closed")
	pool.Close()
	_, err = pool.Alloc(64, "")
	wantError(t, err, ErrInvalidHandle)
}

func TestLookupError(t *testing.T) {
	e, err := LookupError(DomainDriver, 700)
	if err != nil || e.Name != "CUDA_ERROR_ILLEGAL_ADDRESS" || !e.Sticky() || e.Hint == "" || e.Message == "" || !errors.Is(e, ErrIllegalAddress) {
		t.Fatalf("%+v, %v", e, err)
	}
	if e, _ := LookupError(DomainKiln, 10); e.Name != ErrTimeout.Name || e.Sticky() {
		t.Fatalf("%+v", e)
	}
	_, err = LookupError(DomainDriver, 123456)
	wantError(t, err, ErrInvalidArgument, "123456")
	// Every sentinel is the library's name for its code.
	for _, s := range []*Error{ErrDriverNotFound, ErrNVRTCNotFound, ErrNVMLNotFound, ErrSymbolMissing, ErrDriverTooOld,
		ErrInvalidArgument, ErrVersionMismatch, ErrCompileFailed, ErrInvalidHandle, ErrTimeout, ErrInternal,
		ErrUnavailable, ErrCancelled, ErrInvalidValue, ErrOutOfMemory, ErrNoDevice, ErrInvalidDevice, ErrInvalidImage,
		ErrNoBinaryForGPU, ErrECCUncorrectable, ErrInvalidPTX, ErrUnsupportedPTX, ErrNotFound, ErrIllegalAddress,
		ErrLaunchOutOfResources, ErrLaunchTimeout, ErrAssert, ErrIllegalInstruction, ErrMisalignedAddress, ErrLaunchFailed} {
		e, err := LookupError(s.Domain, s.Code)
		if err != nil || e.Name != s.Name {
			t.Errorf("sentinel %s is %+v in the library's table (%v)", s.Name, e, err)
		}
	}
}
