package kiln

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompilePTXAndCubin(t *testing.T) {
	c := newTestCache(t, "")
	ctx := testContext(t)

	ptx, err := c.Compile(ctx, Program{Name: "saxpy.cu", Source: saxpySource}, Target{PTX, 90})
	if err != nil {
		t.Fatalf("compute_90: %v", err)
	}
	defer ptx.Close()
	if ptx.Target() != (Target{PTX, 90}) || ptx.Origin() != OriginCompiled {
		t.Fatalf("target %v origin %v", ptx.Target(), ptx.Origin())
	}
	text := ptx.Data()
	if !bytes.Contains(text, []byte(".target sm_90")) || !bytes.Contains(text, []byte(".entry saxpy")) {
		t.Fatalf("not the PTX of saxpy for sm_90:\n%.400s", text)
	}
	if len(ptx.Key()) != 64 || ptx.CompileTime() <= 0 {
		t.Fatalf("key %q compile time %v", ptx.Key(), ptx.CompileTime())
	}

	cubin, err := c.Compile(ctx, Program{Name: "saxpy.cu", Source: saxpySource}, Target{Cubin, 90})
	if err != nil {
		t.Fatalf("sm_90: %v", err)
	}
	defer cubin.Close()
	if data := cubin.Data(); !bytes.HasPrefix(data, []byte("\x7fELF")) {
		t.Fatalf("a CUBIN is an ELF file; got % x", data[:min(len(data), 8)])
	}
	if cubin.Key() == ptx.Key() {
		t.Fatal("PTX and CUBIN share a cache key")
	}
}

func TestLoweredNamesOfNameExpressions(t *testing.T) {
	c := newTestCache(t, "")
	img, err := c.Compile(testContext(t), Program{
		Name: "fill.cu", Source: fillSource, NameExpressions: []string{"fill<3>", "fill<-1>"},
	}, Target{Cubin, 90})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for expr, want := range map[string]string{"fill<3>": "_Z4fillILi3EEvPi", "fill<-1>": "_Z4fillILin1EEvPi"} {
		got, err := img.LoweredName(expr)
		if err != nil || got != want {
			t.Errorf("LoweredName(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	_, err = img.LoweredName("fill<4>")
	wantError(t, err, ErrInvalidArgument, "fill<4>")
}

func TestCompileErrorHasStructuredDiagnostics(t *testing.T) {
	c := newTestCache(t, "")
	img, err := c.Compile(testContext(t), Program{Name: "broken.cu", Source: brokenSource}, Target{Cubin, 90})
	if img != nil {
		t.Fatal("an image from a program that does not compile")
	}
	e := wantError(t, err, ErrCompileFailed, "broken.cu:3:10")
	if len(e.Diagnostics) != 2 {
		t.Fatalf("want the error and the warning, got %d diagnostics: %+v", len(e.Diagnostics), e.Diagnostics)
	}
	d := e.Diagnostics[0]
	if d.File != "broken.cu" || d.Line != 3 || d.Column != 10 || d.Severity != SeverityError {
		t.Errorf("the error is at %s:%d:%d (%v), want broken.cu:3:10 error", d.File, d.Line, d.Column, d.Severity)
	}
	if d.Message != `identifier "z" is undefined` || d.SourceLine != "  x[0] = z;" {
		t.Errorf("message %q source line %q", d.Message, d.SourceLine)
	}
	if !strings.HasPrefix(d.Formatted, "broken.cu:3:10: error:") || !strings.Contains(d.Formatted, "^") {
		t.Errorf("formatted:\n%s", d.Formatted)
	}
	w := e.Diagnostics[1]
	if w.Severity != SeverityWarning || w.Line != 2 || w.Column != 7 || w.Code != "177-D" {
		t.Errorf("the warning: %+v", w)
	}
	if s, _ := c.Stats(); s.CompileFailures != 1 {
		t.Errorf("compile failures %d, want 1", s.CompileFailures)
	}
}

func TestWarningsOfAnAcceptedProgram(t *testing.T) {
	c := newTestCache(t, "")
	src := "__global__ void g(float* x) {\n  int unused = 1;\n  x[0] = 1.f;\n}\n"
	img, err := c.Compile(testContext(t), Program{Name: "warn.cu", Source: src}, Target{Cubin, 90})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	d, err := img.Diagnostics()
	if err != nil || len(d) != 1 || d[0].Code != "177-D" || d[0].Line != 2 || d[0].Severity != SeverityWarning {
		t.Fatalf("diagnostics %+v, %v", d, err)
	}
}

func TestSecondCompileIsAMemoryHit(t *testing.T) {
	c := newTestCache(t, "")
	ctx := testContext(t)
	p := Program{Name: "saxpy.cu", Source: saxpySource}
	first, err := c.Compile(ctx, p, Target{PTX, 90})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := c.Compile(ctx, p, Target{PTX, 90})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if first.Origin() != OriginCompiled || second.Origin() != OriginMemory {
		t.Fatalf("origins %v then %v, want compiled then memory", first.Origin(), second.Origin())
	}
	if !bytes.Equal(first.Data(), second.Data()) || first.Key() != second.Key() {
		t.Fatal("the hit is not the same image")
	}
	s, err := c.Stats()
	if err != nil || s.Compiles != 1 || s.MemoryHits != 1 {
		t.Fatalf("stats %+v, %v: want 1 compile and 1 memory hit", s, err)
	}
}

// The first compile runs in a child process; this process then finds it on disk.
func TestDiskHitAcrossProcesses(t *testing.T) {
	p := Program{Name: "across.cu", Source: saxpySource, Defines: []string{"ACROSS_PROCESSES=1"}}
	if childRole() == "disk-writer" {
		c := newTestCache(t, os.Getenv("KILN_GO_TEST_DIR"))
		img, err := c.Compile(testContext(t), p, Target{PTX, 90})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if img.Origin() != OriginCompiled {
			t.Fatalf("the child's compile came from %v", img.Origin())
		}
		return
	}
	dir := t.TempDir()
	runChild(t, "TestDiskHitAcrossProcesses", "disk-writer", "KILN_GO_TEST_DIR="+dir)
	c := newTestCache(t, dir)
	img, err := c.Compile(testContext(t), p, Target{PTX, 90})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Origin() != OriginDisk {
		t.Fatalf("origin %v, want disk (the child's compile)", img.Origin())
	}
	if s, _ := c.Stats(); s.Compiles != 0 || s.DiskHits != 1 {
		t.Fatalf("stats %+v: want no compile and 1 disk hit", s)
	}
}

func TestDefaultCacheUsesKilnCacheDir(t *testing.T) {
	c, err := DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := DefaultCache(); again != c {
		t.Fatal("DefaultCache made a second cache")
	}
	c.Close() // does nothing to the default cache
	img, err := c.Compile(testContext(t), Program{Name: "default.cu", Source: emptySource}, Target{PTX, 80})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	entries, _ := filepath.Glob(filepath.Join(os.Getenv("KILN_CACHE_DIR"), "entries", "*", img.Key()+".kjit"))
	if len(entries) != 1 {
		t.Fatalf("no entry for key %s under $KILN_CACHE_DIR=%s", img.Key(), os.Getenv("KILN_CACHE_DIR"))
	}
}

func TestPackageCompileNeedsADevice(t *testing.T) {
	img, err := Compile(testContext(t), Program{Name: "saxpy.cu", Source: saxpySource})
	if hasGPU() {
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		want, _ := TargetForDevice(0)
		if img.Target() != want {
			t.Fatalf("target %v, want device 0's %v", img.Target(), want)
		}
		return
	}
	wantError(t, err, ErrDriverNotFound)
}

func TestCompileWithADoneContextCompilesNothing(t *testing.T) {
	c := newTestCache(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Compile(ctx, Program{Source: saxpySource}, Target{PTX, 90})
	wantError(t, err, ErrCancelled, "context canceled")
	if !errors.Is(err, context.Canceled) {
		t.Fatal("a cancelled compile does not unwrap to context.Canceled")
	}
	if s, _ := c.Stats(); s.Compiles != 0 || s.MemoryMisses != 0 {
		t.Fatalf("stats %+v: the cache was asked", s)
	}
}

func TestProgramOptionsReachNVRTC(t *testing.T) {
	c := newTestCache(t, "")
	src := `#include "value.h"
#ifndef FROM_DEFINE
#error FROM_DEFINE is not defined
#endif
extern "C" __global__ void k(int* v) { v[0] = VALUE + FROM_DEFINE; }
`
	p := Program{
		Name: "options.cu", Source: src,
		Headers:  []Header{{Name: "value.h", Source: "#define VALUE 40\n"}},
		Defines:  []string{"FROM_DEFINE=2"},
		Standard: "c++17", LineInfo: true, FastMath: true, MaxRegisters: 32,
		ExtraOptions: []string{"-DEXTRA=1"},
	}
	img, err := c.Compile(testContext(t), p, Target{PTX, 90})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if !bytes.Contains(img.Data(), []byte("42")) {
		t.Fatalf("VALUE + FROM_DEFINE is not 42 in the PTX:\n%s", img.Data())
	}
	// Without the define the program does not compile: the defines are really passed.
	p.Defines = nil
	_, err = c.Compile(testContext(t), p, Target{PTX, 90})
	wantError(t, err, ErrCompileFailed, "FROM_DEFINE is not defined")
}

func TestNulBytesAreRefusedBeforeC(t *testing.T) {
	c := newTestCache(t, "")
	_, err := c.Compile(testContext(t), Program{Source: "__global__ void k() {}\x00 garbage"}, Target{PTX, 90})
	wantError(t, err, ErrInvalidArgument, "Program.Source", "offset 22")
	_, err = c.Compile(testContext(t), Program{Source: emptySource, Defines: []string{"A", "B\x00C"}}, Target{PTX, 90})
	wantError(t, err, ErrInvalidArgument, "Program.Defines[1]")
}
