package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	kiln "github.com/kiln-gpu/kiln/bindings/go"
)

const saxpySource = `extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
`

// Config is what the service is started with.
type Config struct {
	Device         int           // the CUDA device
	Arch           string        // the target ("sm_90", "compute_90"); "": the device's, or compute_90 without a GPU
	Streams        int           // requests running on the GPU at once; 0: 8
	MaxElements    int           // the longest x and y accepted; 0: 16M
	RequestTimeout time.Duration // the longest a request may take; 0: 10 s
}

// Service answers POST /saxpy and GET /healthz. Its kernel is compiled at start-up through kiln's
// cache; without a GPU it still compiles (so a broken kernel fails the start-up) and answers 503.
type Service struct {
	cfg     Config
	target  kiln.Target
	origin  kiln.Origin
	module  *kiln.Module
	kernel  *kiln.Kernel
	streams chan *kiln.Stream // a pool: a request takes one, and gives it back

	unavailable error                 // why there is no GPU to run on (nil: there is one)
	broken      atomic.Pointer[error] // a sticky GPU error: the CUDA context is gone
}

// New compiles the kernel and, when there is a GPU, loads it and makes the streams.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Streams <= 0 {
		cfg.Streams = 8
	}
	if cfg.MaxElements <= 0 {
		cfg.MaxElements = 16 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	s := &Service{cfg: cfg}
	if n, err := kiln.DeviceCount(); err != nil {
		s.unavailable = err
	} else if cfg.Device >= n {
		s.unavailable = fmt.Errorf("device %d requested, but the driver sees %d", cfg.Device, n)
	}
	var err error
	switch {
	case cfg.Arch != "":
		s.target, err = kiln.ParseTarget(cfg.Arch)
	case s.unavailable == nil:
		s.target, err = kiln.TargetForDevice(cfg.Device)
	default:
		s.target = kiln.Target{Kind: kiln.PTX, Arch: 90}
	}
	if err != nil {
		return nil, err
	}
	cache, err := kiln.DefaultCache()
	if err != nil {
		return nil, err
	}
	img, err := cache.Compile(ctx, kiln.Program{Name: "saxpy.cu", Source: saxpySource}, s.target)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	s.origin = img.Origin()
	if s.unavailable != nil {
		return s, nil
	}
	if s.module, err = kiln.LoadModule(img, cfg.Device); err != nil {
		return nil, err
	}
	if s.kernel, err = s.module.Kernel("saxpy"); err != nil {
		s.Close()
		return nil, err
	}
	s.streams = make(chan *kiln.Stream, cfg.Streams)
	for i := 0; i < cfg.Streams; i++ {
		st, err := kiln.NewStream(cfg.Device)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.streams <- st
	}
	return s, nil
}

// Target is what the kernel was compiled for; Origin where the compile came from.
func (s *Service) Target() kiln.Target { return s.target }

// Origin says whether the start-up compile ran NVRTC or hit kiln's cache.
func (s *Service) Origin() kiln.Origin { return s.origin }

// Close releases the GPU resources; call it once no request runs.
func (s *Service) Close() {
	if s.streams != nil {
		close(s.streams)
		for st := range s.streams {
			st.Close()
		}
		s.streams = nil
	}
	s.kernel.Close()
	s.module.Close()
}

// Handler routes the service's endpoints.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/saxpy", s.saxpy)
	mux.HandleFunc("/healthz", s.healthz)
	return mux
}

// whyUnavailable is the reason the service cannot run kernels, or nil.
func (s *Service) whyUnavailable() error {
	if s.unavailable != nil {
		return s.unavailable
	}
	if err := s.broken.Load(); err != nil {
		return *err
	}
	return nil
}

type saxpyRequest struct {
	A float32   `json:"a"`
	X []float32 `json:"x"`
	Y []float32 `json:"y"`
}

type saxpyResponse struct {
	Y []float32 `json:"y"`
}

func (s *Service) saxpy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "POST a JSON body {\"a\", \"x\", \"y\"}", "")
		return
	}
	if err := s.whyUnavailable(); err != nil {
		writeKilnError(w, http.StatusServiceUnavailable, err)
		return
	}
	var req saxpyRequest
	body := http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxElements)*2*16+1024)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not {\"a\": number, \"x\": [...], \"y\": [...]}: "+err.Error(), "")
		return
	}
	if len(req.X) != len(req.Y) || len(req.X) == 0 || len(req.X) > s.cfg.MaxElements {
		writeError(w, http.StatusBadRequest, "bad_request",
			fmt.Sprintf("x and y must have the same length, between 1 and %d (got %d and %d)", s.cfg.MaxElements, len(req.X), len(req.Y)), "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	y, err := s.run(ctx, req)
	if err != nil {
		writeKilnError(w, statusOf(err), err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(saxpyResponse{Y: y})
}

// run computes a*x+y on the GPU, on a stream of the pool.
func (s *Service) run(ctx context.Context, req saxpyRequest) ([]float32, error) {
	var st *kiln.Stream
	select {
	case st = <-s.streams:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Work left running after a deadline stays ordered before the stream's next user.
	defer func() { s.streams <- st }()
	n := len(req.X)
	x, err := kiln.NewBuffer(st, 4*n, "saxpy x")
	if err != nil {
		return nil, err
	}
	defer x.Close() // freed in order on the stream: after the kernel, even if the wait gave up
	y, err := kiln.NewBuffer(st, 4*n, "saxpy y")
	if err != nil {
		return nil, err
	}
	defer y.Close()
	if err := kiln.CopyToDevice(st, x.Ptr(), req.X); err != nil {
		return nil, s.note(err)
	}
	if err := kiln.CopyToDevice(st, y.Ptr(), req.Y); err != nil {
		return nil, s.note(err)
	}
	if err := s.kernel.Launch(st, kiln.Cover(n, 256), req.A, x, y, int32(n)); err != nil {
		return nil, s.note(err)
	}
	if err := st.Wait(ctx); err != nil {
		return nil, s.note(err)
	}
	out := make([]float32, n)
	if err := kiln.CopyToHost(st, out, y.Ptr()); err != nil {
		return nil, s.note(err)
	}
	return out, nil
}

// note remembers a sticky error: the CUDA context is gone, and the service with it.
func (s *Service) note(err error) error {
	var ke *kiln.Error
	if errors.As(err, &ke) && ke.Sticky() {
		s.broken.CompareAndSwap(nil, &err)
	}
	return err
}

func statusOf(err error) int {
	var ke *kiln.Error
	switch {
	case errors.Is(err, kiln.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, kiln.ErrCancelled), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable // the client left; nobody reads this
	case errors.Is(err, kiln.ErrOutOfMemory):
		return http.StatusServiceUnavailable
	case errors.As(err, &ke) && ke.Sticky():
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Service) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.whyUnavailable(); err != nil {
		writeKilnError(w, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"status": "ok", "device": s.cfg.Device, "target": s.target.String(), "compile_origin": s.origin.String(),
	})
}

// errorBody is every error the service answers: kiln's name for it, the whole story and the hint.
type errorBody struct {
	Error struct {
		Name    string `json:"name"`
		Message string `json:"message"`
		Hint    string `json:"hint,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, name, message, hint string) {
	var b errorBody
	b.Error.Name, b.Error.Message, b.Error.Hint = name, message, hint
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(b)
}

func writeKilnError(w http.ResponseWriter, status int, err error) {
	var ke *kiln.Error
	if errors.As(err, &ke) {
		writeError(w, status, ke.Name, ke.Message, ke.Hint)
		return
	}
	name := "internal"
	if errors.Is(err, context.DeadlineExceeded) {
		name = "timeout"
	} else if errors.Is(err, context.Canceled) {
		name = "cancelled"
	}
	writeError(w, status, name, err.Error(), "")
}
