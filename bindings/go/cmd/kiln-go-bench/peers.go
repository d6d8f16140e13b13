//go:build kilnpeers

package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../../../bench/go_peers
#cgo LDFLAGS: -lkiln_go_peers
#include "kiln_go_peers.h"
*/
import "C"

import (
	"errors"
	"time"
)

// The peers: kiln's C++ launch and the raw driver call, each loop run wholly in C++
// (bench/go_peers, libkiln_go_peers.so).
type cppPeers struct{}

func newPeers() peers { return cppPeers{} }

func peerResult(status C.int, seconds C.double) (time.Duration, error) {
	if status != 0 {
		return 0, errors.New(C.GoString(C.kiln_peers_last_error()))
	}
	return time.Duration(float64(seconds) * float64(time.Second)), nil
}

func (cppPeers) launchLoopRaw(device, n int) (time.Duration, error) {
	var s C.double
	return peerResult(C.kiln_peers_launch_loop_raw(C.int(device), C.long(n), &s), s)
}

func (cppPeers) launchLoopCore(device, n int) (time.Duration, error) {
	var s C.double
	return peerResult(C.kiln_peers_launch_loop_core(C.int(device), C.long(n), &s), s)
}

func (cppPeers) launchThreadsCore(device, threads, nEach int) (time.Duration, error) {
	var s C.double
	return peerResult(C.kiln_peers_launch_threads_core(C.int(device), C.int(threads), C.long(nEach), &s), s)
}
