// The processor's hint for a spin-wait loop (x86 PAUSE, Arm YIELD): lets the sibling hyperthread
// run and saves power while a thread polls for something microseconds away. Shared by every layer
// that spins before sleeping (core's waits, the IPC channel, kilnd's handler pool).
#pragma once

namespace kiln {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace kiln
