package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kiln "github.com/kiln-gpu/kiln/bindings/go"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "go-saxpy-service-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("KILN_CACHE_DIR", dir) // kiln's default cache, out of the user's
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func hasGPU() bool {
	n, err := kiln.DeviceCount()
	return err == nil && n > 0
}

func start(t *testing.T, cfg Config) (*Service, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("start-up: %v", err)
	}
	server := httptest.NewServer(s.Handler()) // a real listener on 127.0.0.1:0
	t.Cleanup(func() {
		server.Close()
		s.Close()
	})
	return s, server
}

// post sends a request; safe from any goroutine (it fails nothing itself).
func post(url string, body any) (int, []byte, error) {
	data, _ := json.Marshal(body)
	resp, err := http.Post(url+"/saxpy", "application/json", bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, err = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes(), err
}

func mustPost(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	status, out, err := post(url, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, out
}

func decodeError(t *testing.T, body []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Name == "" || e.Error.Message == "" {
		t.Fatalf("not an error body (%v): %s", err, body)
	}
	return e
}

func TestStartupCompileHitsTheCacheTheSecondTime(t *testing.T) {
	first, _ := start(t, Config{})
	if !hasGPU() && first.Target() != (kiln.Target{Kind: kiln.PTX, Arch: 90}) {
		t.Fatalf("without a GPU the kernel is compiled for compute_90, not %v", first.Target())
	}
	again, _ := start(t, Config{})
	if again.Origin() != kiln.OriginMemory || again.Target() != first.Target() {
		t.Fatalf("the second start-up compile came from %v for %v, want the memory tier", again.Origin(), again.Target())
	}
}

func TestWithoutAGPUAnswers503(t *testing.T) {
	if hasGPU() {
		t.Skip("a GPU is here: TestConcurrentRequestsOnTheGPU covers this machine")
	}
	_, server := start(t, Config{})
	status, body := mustPost(t, server.URL, saxpyRequest{A: 2, X: []float32{1}, Y: []float32{1}})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", status, body)
	}
	e := decodeError(t, body)
	if e.Error.Name != "KILN_ERROR_DRIVER_NOT_FOUND" || e.Error.Hint == "" || !strings.Contains(e.Error.Message, "libcuda.so.1") {
		t.Fatalf("error %+v", e.Error)
	}
	resp, err := http.Get(server.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health bytes.Buffer
	health.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || decodeError(t, health.Bytes()).Error.Name != e.Error.Name {
		t.Fatalf("healthz %d without a GPU: %s", resp.StatusCode, health.Bytes())
	}
}

func TestArchFlagChoosesTheTarget(t *testing.T) {
	// PTX for an older architecture: it loads on any newer GPU too (the driver JIT-compiles it),
	// where a CUBIN for sm_80 would not load on an sm_90.
	s, _ := start(t, Config{Arch: "compute_80"})
	if s.Target() != (kiln.Target{Kind: kiln.PTX, Arch: 80}) {
		t.Fatalf("target %v", s.Target())
	}
	if _, err := New(context.Background(), Config{Arch: "sm_abc"}); err == nil {
		t.Fatal("a bad -arch started")
	}
}

func TestOnlyPost(t *testing.T) {
	_, server := start(t, Config{})
	resp, err := http.Get(server.URL + "/saxpy")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /saxpy: %d", resp.StatusCode)
	}
}

func requireGPU(t *testing.T) {
	if hasGPU() {
		return
	}
	_, err := kiln.DeviceCount()
	if os.Getenv("KILN_REQUIRE_GPU") == "1" {
		t.Fatalf("KILN_REQUIRE_GPU=1 but there is no GPU: %v", err)
	}
	t.Skipf("no GPU: %v", err)
}

func TestConcurrentRequestsOnTheGPU(t *testing.T) {
	requireGPU(t)
	_, server := start(t, Config{Streams: 4})
	resp, err := http.Get(server.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d with a GPU", resp.StatusCode)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for r := 0; r < 32; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			n := 1 + r*997
			req := saxpyRequest{A: float32(r), X: make([]float32, n), Y: make([]float32, n)}
			for i := range req.X {
				req.X[i], req.Y[i] = float32(i%100), 1
			}
			status, body, err := post(server.URL, req)
			if err != nil || status != http.StatusOK {
				errs <- fmt.Errorf("request %d: %v %d %s", r, err, status, body)
				return
			}
			var out saxpyResponse
			if err := json.Unmarshal(body, &out); err != nil || len(out.Y) != n {
				errs <- fmt.Errorf("request %d: %v, %d values", r, err, len(out.Y))
				return
			}
			for i, v := range out.Y {
				if want := float32(r)*float32(i%100) + 1; v != want {
					errs <- fmt.Errorf("request %d: y[%d] = %v, want %v", r, i, v, want)
					return
				}
			}
		}(r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	status, body := mustPost(t, server.URL, saxpyRequest{A: 1, X: []float32{1, 2}, Y: []float32{1}})
	if status != http.StatusBadRequest {
		t.Fatalf("mismatched lengths: %d %s", status, body)
	}
	decodeError(t, body)
}
