package kiln

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// childRole is set when this test binary was re-run by a test as a child process (for work that
// must happen in a fresh process: a second cache user, a sticky GPU error, a finalizer's output).
const childRoleVariable = "KILN_GO_TEST_CHILD"

func TestMain(m *testing.M) {
	if childRole() != "" {
		os.Exit(m.Run()) // a child uses its parent's cache folder
	}
	// The default cache reads the environment on first use: keep it out of the user's cache.
	dir, err := os.MkdirTemp("", "kiln-go-test-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("KILN_CACHE_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runChild re-runs this test binary for one test, with childRoleVariable=role and env, and
// returns its combined output; it fails the test when the child fails.
func runChild(t *testing.T, test, role string, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childRoleVariable+"="+role), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %q of %s failed: %v\n%s", role, test, err, out)
	}
	return string(out)
}

func childRole() string { return os.Getenv(childRoleVariable) }

// requireGPU skips the test without a GPU, saying why; with KILN_REQUIRE_GPU=1 it fails instead.
func requireGPU(t testing.TB) {
	t.Helper()
	n, err := DeviceCount()
	if err == nil && n > 0 {
		return
	}
	reason := "the driver sees no device"
	if err != nil {
		reason = err.Error()
	}
	if os.Getenv("KILN_REQUIRE_GPU") == "1" {
		t.Fatalf("KILN_REQUIRE_GPU=1 but there is no GPU: %s", reason)
	}
	t.Skipf("no GPU: %s", reason)
}

func hasGPU() bool {
	n, err := DeviceCount()
	return err == nil && n > 0
}

// asError is the *Error err must be.
func asError(t testing.TB, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *kiln.Error, got %T: %v", err, err)
	}
	return e
}

// wantError checks that err is target (errors.Is), says so clearly, and its message names each
// part.
func wantError(t testing.TB, err error, target *Error, parts ...string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got no error", target.Name)
	}
	e := asError(t, err)
	if !errors.Is(err, target) {
		t.Fatalf("want %s, got %s: %v", target.Name, e.Name, err)
	}
	if e.Message == "" || e.Name != target.Name {
		t.Fatalf("error without a message or with the wrong name: %+v", e)
	}
	if e.Hint != "" && !strings.Contains(err.Error(), e.Hint) {
		t.Fatalf("the error string lacks the hint %q: %s", e.Hint, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("the error should mention %q: %v", p, err)
		}
	}
	return e
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newTestCache(t testing.TB, dir string) *Cache {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := NewCache(CacheOptions{DiskDirectory: dir})
	if err != nil {
		t.Fatalf("NewCache: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
