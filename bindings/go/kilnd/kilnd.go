// Package kilnd is a small client of kilnd, kiln's HTTP service, for what a co-located Go service
// needs beside the JSON API: POSIX shared memory registered with kilnd, and copies between it and
// kilnd's buffers without a request body (docs/SERVICE.md, "Shared memory"); and CUDA IPC of
// device memory over kilnd's IPC socket (IpcSocket). Pure Go: it needs neither cgo nor libkiln.
//
//	c := kilnd.NewClient("http://127.0.0.1:8470", token)
//	region, err := c.CreateSharedMemory(ctx, 256<<20)
//	copy(region.Data(), data)
//	_, err = region.Upload(ctx, bufferID, kilnd.CopyOptions{})
//	defer region.Close(ctx)
package kilnd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
)

// Error is kilnd's answer to a request it refused: the HTTP status (0 over the IPC socket) and the
// error body's members.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("kilnd answered %d %s: %s", e.Status, e.Code, e.Message)
	if e.Status == 0 { // over the IPC socket, which has no status
		s = fmt.Sprintf("kilnd refused: %s: %s", e.Code, e.Message)
	}
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// Client talks to one kilnd. Safe for concurrent use (it shares an http.Client).
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient for kilnd at base ("http://127.0.0.1:8470") with a tenant's bearer token.
func NewClient(base, token string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}
}

// Do sends one request with body (JSON-encoded unless nil) and decodes the answer into out (when
// not nil). An error answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, payload)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "unknown", Message: string(data)}
		}
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Field: e.Error.Field}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	return json.Unmarshal(data, out)
}

// RegionInfo is kilnd's record of a shared memory region.
type RegionInfo struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name"`
	Offset   uint64 `json:"offset"`
	Bytes    uint64 `json:"bytes"`
	OwnerPID int    `json:"owner_pid,omitempty"`
	Pinned   bool   `json:"pinned"`
}

// SharedMemory is a POSIX shared memory object this process made and registered with kilnd
// (which must run with allow_client_shm), tied to this process: kilnd drops it when the process
// ends. Close unregisters, unmaps and removes it.
type SharedMemory struct {
	RegionInfo
	client *Client
	path   string
	data   []byte
}

var regions atomic.Uint64

// The folder where Linux keeps POSIX shared memory objects (what shm_open opens).
const shmFolder = "/dev/shm"

// CreateSharedMemory makes an object of n bytes and registers it with kilnd.
func (c *Client) CreateSharedMemory(ctx context.Context, n int) (*SharedMemory, error) {
	if n < 1 {
		return nil, errors.New("kilnd: a shared memory region holds at least 1 byte")
	}
	name := fmt.Sprintf("kiln-go-%d-%d", os.Getpid(), regions.Add(1))
	path := filepath.Join(shmFolder, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kilnd: creating shared memory %s: %w", path, err)
	}
	defer f.Close() // the mapping keeps the memory
	s := &SharedMemory{client: c, path: path}
	fail := func(err error) (*SharedMemory, error) {
		if s.data != nil {
			syscall.Munmap(s.data)
		}
		os.Remove(path)
		return nil, err
	}
	if err := f.Truncate(int64(n)); err != nil {
		return fail(fmt.Errorf("kilnd: sizing shared memory %s: %w", path, err))
	}
	if s.data, err = syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("kilnd: mapping shared memory %s: %w", path, err))
	}
	request := map[string]any{"name": "/" + name, "bytes": n, "owner_pid": os.Getpid()}
	if err := c.Do(ctx, http.MethodPost, "/v1/shm", request, &s.RegionInfo); err != nil {
		return fail(err)
	}
	return s, nil
}

// Data is the region's memory, mapped here (valid until Close).
func (s *SharedMemory) Data() []byte { return s.data }

// CopyOptions place a copy: Offset in the buffer, RegionOffset in the region, Bytes (0: the rest
// of the region).
type CopyOptions struct {
	Offset       uint64
	RegionOffset uint64
	Bytes        uint64
}

// Upload copies from the region into kilnd's buffer; it returns the bytes copied.
func (s *SharedMemory) Upload(ctx context.Context, buffer uint64, o CopyOptions) (uint64, error) {
	return s.copy(ctx, "upload", buffer, o)
}

// Download copies from kilnd's buffer into the region; it returns the bytes copied.
func (s *SharedMemory) Download(ctx context.Context, buffer uint64, o CopyOptions) (uint64, error) {
	return s.copy(ctx, "download", buffer, o)
}

func (s *SharedMemory) copy(ctx context.Context, direction string, buffer uint64, o CopyOptions) (uint64, error) {
	body := map[string]any{"direction": direction, "region": s.ID, "offset": o.Offset, "region_offset": o.RegionOffset}
	if o.Bytes != 0 {
		body["bytes"] = o.Bytes
	}
	var out struct {
		Bytes uint64 `json:"bytes"`
	}
	err := s.client.Do(ctx, http.MethodPost, fmt.Sprintf("/v1/buffers/%d/shm", buffer), body, &out)
	return out.Bytes, err
}

// Close unregisters the region (kilnd having lost it already is no error), unmaps it and removes
// the object. Idempotent.
func (s *SharedMemory) Close(ctx context.Context) error {
	if s.data == nil {
		return nil
	}
	err := s.client.Do(ctx, http.MethodDelete, fmt.Sprintf("/v1/shm/%d", s.ID), nil, nil)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		err = nil
	}
	syscall.Munmap(s.data)
	s.data = nil
	if rmErr := os.Remove(s.path); err == nil && rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = rmErr
	}
	return err
}
