/* The C++ and raw-driver launch figures the Go benchmark (bindings/go/cmd/kiln-go-bench) compares
 * itself with, measured inside the Go process so that both run on the same GPU in the same run.
 * Each function compiles its own empty kernel through kiln's JIT (once per device) and runs its
 * whole loop in C++: no cgo cost is in these figures.
 *
 * Each returns 0 and the loop's wall time in *seconds (launches, then a synchronize), or -1 with
 * the reason in kiln_peers_last_error(). */
#ifndef KILN_GO_PEERS_H
#define KILN_GO_PEERS_H

#ifdef __cplusplus
extern "C" {
#endif

/* n launches through the driver's own cuLaunchKernel (the pointer kiln also calls). */
int kiln_peers_launch_loop_raw(int device, long n, double* seconds);
/* n launches through kiln::core::launch. */
int kiln_peers_launch_loop_core(int device, long n, double* seconds);
/* `threads` threads, each on its own stream, n_each kiln::core::launch calls each, started together. */
int kiln_peers_launch_threads_core(int device, int threads, long n_each, double* seconds);
/* Why the last call on this thread failed. */
const char* kiln_peers_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* KILN_GO_PEERS_H */
