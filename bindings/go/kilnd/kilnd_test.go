package kilnd

// Against a real kilnd started here (KILND names the binary; the ctest run sets it): regions are
// registered, listed, refused with the field named, unregistered on Close, and dropped when the
// process that registered them ends.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const token = "go-client-token-0123456789abcdef0123"

func startKilnd(t *testing.T) *Client {
	t.Helper()
	c, _ := startKilndWithIpcSocket(t)
	return c
}

// startKilndWithIpcSocket also returns the path of kilnd's IPC socket (allow_client_ipc on).
func startKilndWithIpcSocket(t *testing.T) (*Client, string) {
	t.Helper()
	binary := os.Getenv("KILND")
	if binary == "" {
		t.Skip("KILND is not set (kilnd was not built: it needs Boost.Beast)")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("alice "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "kilnd.json")
	if err := os.WriteFile(config, []byte(`{"allow_client_shm": true, "allow_client_ipc": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "kilnd.sock")
	cmd := exec.Command(binary, "--port", "0", "--tokens", tokens, "--config", config, "--cache-dir", filepath.Join(dir, "cache"),
		"--ipc-socket", socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	listening := regexp.MustCompile(`listening on (http://[0-9.]+:[0-9]+)`)
	lines := bufio.NewScanner(out)
	address := ""
	for lines.Scan() { // the HTTP address, then the IPC socket
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			address = m[1]
		}
		if address != "" && strings.Contains(lines.Text(), "serving the IPC socket on") {
			go func() { // keep reading, so kilnd never blocks on a full pipe
				for lines.Scan() {
				}
			}()
			return NewClient(address, token), socket
		}
	}
	t.Fatal("kilnd exited without listening")
	return nil, ""
}

func TestRegionRegisteredListedAndUnregistered(t *testing.T) {
	c := startKilnd(t)
	ctx := context.Background()
	region, err := c.CreateSharedMemory(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if region.Bytes != 1<<20 || region.OwnerPID != os.Getpid() || len(region.Data()) != 1<<20 {
		t.Fatalf("region %+v", region.RegionInfo)
	}
	var list struct {
		Regions []RegionInfo `json:"regions"`
	}
	if err := c.Do(ctx, "GET", "/v1/shm", nil, &list); err != nil || len(list.Regions) != 1 || list.Regions[0].ID != region.ID {
		t.Fatalf("list %+v, %v", list, err)
	}
	region.Data()[0] = 42 // the memory is ours to write
	if err := region.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := c.Do(ctx, "GET", fmt.Sprintf("/v1/shm/%d", region.ID), nil, nil); !errors.As(err, &e) || e.Status != 404 {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := os.Stat(region.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the object is still there: %v", err)
	}
	if err := region.Close(ctx); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

func TestRefusalsNameTheField(t *testing.T) {
	c := startKilnd(t)
	ctx := context.Background()
	var e *Error
	err := c.Do(ctx, "POST", "/v1/shm", map[string]any{"name": "no-slash", "bytes": 16}, nil)
	if !errors.As(err, &e) || e.Status != 400 || e.Field != "name" {
		t.Fatalf("a bad name: %v", err)
	}
	region, err := c.CreateSharedMemory(ctx, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close(ctx)
	err = c.Do(ctx, "POST", "/v1/shm", map[string]any{"name": region.Name, "bytes": 8192}, nil)
	if !errors.As(err, &e) || e.Status != 400 || e.Field != "bytes" {
		t.Fatalf("too many bytes: %v", err)
	}
	if _, err := region.Upload(ctx, 12345, CopyOptions{}); !errors.As(err, &e) || (e.Status != 404 && e.Status != 503) {
		t.Fatalf("a buffer that does not exist: %v", err)
	}
}

// The child half of TestRegionEndsWithItsProcess: registers a region, prints its id, exits.
func TestHelperRegistersAndExits(t *testing.T) {
	if os.Getenv("KILND_HELPER_URL") == "" {
		t.Skip("run by TestRegionEndsWithItsProcess")
	}
	region, err := NewClient(os.Getenv("KILND_HELPER_URL"), token).CreateSharedMemory(context.Background(), 4096)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(region.path) // the object goes; kilnd's mapping stays until it drops the region
	json.NewEncoder(os.Stdout).Encode(region.ID)
	os.Exit(0)
}

func TestRegionEndsWithItsProcess(t *testing.T) {
	c := startKilnd(t)
	child := exec.Command(os.Args[0], "-test.run=^TestHelperRegistersAndExits$")
	child.Env = append(os.Environ(), "KILND_HELPER_URL="+c.base)
	out, err := child.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var id uint64
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&id); err != nil || id == 0 {
		t.Fatalf("child said %q", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var e *Error
	if err := c.Do(ctx, "GET", fmt.Sprintf("/v1/shm/%d", id), nil, nil); !errors.As(err, &e) || e.Status != 404 {
		t.Fatalf("the region outlived its process: %v", err)
	}
}

// The IPC socket's protocol and refusals (a machine without a GPU can check no more than these;
// the GPU tests map real device memory from C++ and Python).
func TestIpcSocketAnswersAndRefusesClearly(t *testing.T) {
	_, path := startKilndWithIpcSocket(t)
	s, err := DialIpcSocket(path, token)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	protocol, ops, err := s.Hello()
	if err != nil || protocol != 1 || len(ops) != 3 {
		t.Fatalf("hello: %d %v %v", protocol, ops, err)
	}
	var refused *Error
	if _, err := s.ExportBuffer(12345); !errors.As(err, &refused) || refused.Code != "not_found" || refused.Status != 0 {
		t.Fatalf("export of no buffer: %v", err)
	}
	fd, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	// Without a GPU there is no device to map it on; with one, /dev/null is not device memory.
	if _, err := s.ImportBuffer(fd, 4096, 0, "x"); !errors.As(err, &refused) || (refused.Code != "no_gpu" && refused.Code != "bad_request") {
		t.Fatalf("import of /dev/null: %v", err)
	}
	if protocol, _, err := s.Hello(); err != nil || protocol != 1 {
		t.Fatalf("the connection did not serve on: %v", err)
	}
	stranger, err := DialIpcSocket(path, "not-a-token-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.ExportBuffer(1); !errors.As(err, &refused) || refused.Code != "unauthorized" {
		t.Fatalf("unknown token: %v", err)
	}
}
