// The algorithm behind pageable copies at pinned speed, independent of the driver so that its
// chunking can be tested on plain memory. A copy is cut into chunks; worker threads each own a ring
// of staging buffers; for host-to-device a worker waits until its next staging buffer is free
// (the DMA that last used it has finished), copies a chunk of the caller's memory into it and
// enqueues the DMA from it; device-to-host runs the other way round. Several workers copy on the
// CPU while the copy engine drains the chunks before, so both run at once.
//
// Backend requirements (a type with these members, all callable from worker threads):
//   struct Slot;                                  one staging buffer + its completion marker
//   Slot make_slot(std::size_t bytes);            called once per slot at start-up
//   void* staging(Slot&);
//   void bind_thread();                           per worker, before its first chunk
//   void to_device(Stream, std::uint64_t dst, const void* staging, std::size_t n);   async
//   void to_host(Stream, void* staging, std::uint64_t src, std::size_t n);           async
//   void mark(Slot&, Stream);                     completion marker after the last enqueued op
//   void wait(Slot&);                             blocks until the marker has passed
//
// Thread safety: one copy at a time per engine (copy() serialises callers); the workers are
// internal.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln::memory::detail {

// Chunk boundaries of one copy. With `ramp`, a copy of at least four chunks starts and ends with
// chunks of 1/8, 1/4 and 1/2 the size (at least 64 KiB): the copy engine gets its first chunk
// sooner (host-to-device) and the last chunk's host copy is shorter (device-to-host), which is
// the time neither side overlaps with the other.
struct ChunkPlan {
  std::vector<std::size_t> bounds{0};  // count() + 1 offsets, from 0 to the copy's size
  std::size_t count() const { return bounds.size() - 1; }
  std::size_t offset(std::size_t i) const { return bounds[i]; }
  std::size_t length(std::size_t i) const { return bounds[i + 1] - bounds[i]; }
};

inline ChunkPlan plan_chunks(std::size_t bytes, std::size_t chunk_bytes, bool ramp = false) {
  constexpr std::size_t kSmallest = 64u << 10;
  std::vector<std::size_t> edge;  // the ramp's chunk sizes, smallest first
  if (ramp && bytes >= 4 * chunk_bytes)
    for (int shift = 3; shift >= 1; --shift)
      if ((chunk_bytes >> shift) >= kSmallest) edge.push_back(chunk_bytes >> shift);
  std::size_t tail = 0;
  for (std::size_t e : edge) tail += e;
  ChunkPlan plan;
  auto add = [&](std::size_t n) { plan.bounds.push_back(plan.bounds.back() + n); };
  for (std::size_t e : edge) add(e);
  while (plan.bounds.back() < bytes - tail) add(std::min(chunk_bytes, bytes - tail - plan.bounds.back()));
  for (auto e = edge.rbegin(); e != edge.rend(); ++e) add(*e);
  return plan;
}

using CopyFunction = void (*)(void* dst, const void* src, std::size_t n) noexcept;

inline void plain_copy(void* dst, const void* src, std::size_t n) noexcept { std::memcpy(dst, src, n); }

// The host copies: into a staging buffer (host-to-device) and out of one (device-to-host).
struct HostCopies {
  CopyFunction into_staging = plain_copy;
  CopyFunction out_of_staging = plain_copy;
};

enum class Direction { to_device, to_host };

template <typename Backend, typename Stream>
class StagingEngine {
 public:
  // `copies` move bytes between the caller's memory and a staging buffer; `ramp`: see ChunkPlan.
  StagingEngine(Backend backend, unsigned workers, unsigned slots_per_worker, std::size_t chunk_bytes,
                HostCopies copies = {}, bool ramp = false)
      : backend_(std::move(backend)), chunk_bytes_(chunk_bytes), copies_(copies), ramp_(ramp) {
    workers = std::max(1u, workers);
    slots_per_worker = std::max(1u, slots_per_worker);
    rings_.resize(workers);
    for (auto& ring : rings_)
      for (unsigned s = 0; s < slots_per_worker; ++s) ring.slots.push_back(backend_.make_slot(chunk_bytes));
    for (unsigned w = 0; w < workers; ++w) threads_.emplace_back([this, w] { worker(w); });
  }

  ~StagingEngine() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
    // Staging buffers may still feed a DMA: let them finish before the backend frees them.
    for (auto& ring : rings_)
      for (auto& slot : ring.slots) backend_.wait(slot);
  }

  StagingEngine(const StagingEngine&) = delete;
  StagingEngine& operator=(const StagingEngine&) = delete;

  // Returns when every byte of `host` has been read (to_device: copies are enqueued on `stream`,
  // the caller may reuse its memory) or written (to_host: the data is in `host`).
  void copy(Direction direction, void* host, std::uint64_t device, std::size_t bytes, Stream stream) {
    std::lock_guard one_at_a_time(copy_mutex_);
    {
      std::lock_guard lock(mutex_);
      job_ = Job{direction, static_cast<char*>(host), device, bytes, stream, plan_chunks(bytes, chunk_bytes_, ramp_)};
      next_chunk_ = 0;
      chunks_done_ = 0;
      failure_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return chunks_done_ == job_.plan.count(); });
    if (failure_) std::rethrow_exception(failure_);
  }

  const Backend& backend() const { return backend_; }
  std::size_t chunk_bytes() const { return chunk_bytes_; }
  std::size_t workers() const { return threads_.size(); }

 private:
  struct Job {
    Direction direction{};
    char* host = nullptr;
    std::uint64_t device = 0;
    std::size_t bytes = 0;
    Stream stream{};
    ChunkPlan plan;
  };
  struct Ring {
    std::vector<typename Backend::Slot> slots;
    std::size_t next = 0;
  };

  void worker(unsigned index) {
    backend_.bind_thread();
    Ring& ring = rings_[index];
    std::uint64_t seen = 0;
    for (;;) {
      const Job* job_ptr;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        job_ptr = &job_;  // stays put until every chunk of this generation is done
      }
      const Job& job = *job_ptr;
      for (;;) {
        std::size_t i;
        {
          std::lock_guard lock(mutex_);
          // A worker that woke late for a finished job must not take chunks of the next one.
          if (generation_ != seen || next_chunk_ >= job.plan.count()) break;
          i = next_chunk_++;
        }
        try {
          run_chunk(job, ring, i);
        } catch (...) {
          std::lock_guard lock(mutex_);
          if (!failure_) failure_ = std::current_exception();
        }
        std::lock_guard lock(mutex_);
        if (++chunks_done_ == job.plan.count()) done_.notify_all();
      }
    }
  }

  void run_chunk(const Job& job, Ring& ring, std::size_t i) {
    const Stream stream = job.stream;
    auto& slot = ring.slots[ring.next];
    ring.next = (ring.next + 1) % ring.slots.size();
    const std::size_t offset = job.plan.offset(i), n = job.plan.length(i);
    backend_.wait(slot);  // the DMA that last used this buffer is over
    if (job.direction == Direction::to_device) {
      copies_.into_staging(backend_.staging(slot), job.host + offset, n);
      backend_.to_device(stream, job.device + offset, backend_.staging(slot), n);
      backend_.mark(slot, stream);
    } else {
      backend_.to_host(stream, backend_.staging(slot), job.device + offset, n);
      backend_.mark(slot, stream);
      backend_.wait(slot);
      copies_.out_of_staging(job.host + offset, backend_.staging(slot), n);
    }
  }

  Backend backend_;
  std::size_t chunk_bytes_;
  HostCopies copies_;
  bool ramp_;
  std::vector<Ring> rings_;
  std::vector<std::thread> threads_;
  std::mutex copy_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  Job job_;
  std::uint64_t generation_ = 0;
  std::size_t next_chunk_ = 0, chunks_done_ = 0;
  std::exception_ptr failure_;
  bool stopping_ = false;
};

}  // namespace kiln::memory::detail
