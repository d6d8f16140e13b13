// go-saxpy-service serves y = a*x + y on a GPU over HTTP, with kiln's Go binding: the kernel is
// compiled at start-up through kiln's cache, every request runs on a stream of a pool in device
// memory from kiln's pool, and waits with the request's deadline.
//
//	go-saxpy-service [-addr 127.0.0.1:8080] [-device 0] [-arch sm_90] [-streams 8] [-timeout 10s]
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "the address to listen on")
	device := flag.Int("device", 0, "the CUDA device")
	arch := flag.String("arch", "", "the target (sm_90, compute_90); default: the device's, or compute_90 without a GPU")
	streams := flag.Int("streams", 8, "requests running on the GPU at once")
	timeout := flag.Duration("timeout", 10*time.Second, "the longest a request may take")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := New(ctx, Config{Device: *device, Arch: *arch, Streams: *streams, RequestTimeout: *timeout})
	if err != nil {
		log.Fatalf("go-saxpy-service: start-up: %v", err)
	}
	defer s.Close()
	log.Printf("go-saxpy-service: saxpy compiled for %v (%v)", s.Target(), s.Origin())
	if err := s.whyUnavailable(); err != nil {
		log.Printf("go-saxpy-service: no GPU, answering 503: %v", err)
	}

	server := &http.Server{Addr: *addr, Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		server.Shutdown(shutdown)
	}()
	log.Printf("go-saxpy-service: listening on %s", *addr)
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("go-saxpy-service: %v", err)
	}
}
