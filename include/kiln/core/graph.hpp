// CUDA graphs: capture a stream's work, instantiate it once, replay it many times, and update the
// executable graph in place when only kernel arguments (or other node parameters) change.
//
// Thread safety: a Graph is built by one thread. A GraphExec may be launched from any thread, but
// not launched and updated at the same time.
#pragma once

#include <cuda.h>

#include <functional>
#include <utility>

#include "kiln/core/stream.hpp"

namespace kiln::core {

class Graph {
 public:
  Graph() = default;
  // Runs `work(stream)` with `stream` in capture mode and returns what it enqueued. `stream` must
  // not be the legacy default stream. If `work` throws, capture is ended and the partial graph
  // discarded.
  static Graph capture(const StreamRef& stream, const std::function<void(const StreamRef&)>& work);
  ~Graph();
  Graph(Graph&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Graph& operator=(Graph&& other) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  CUgraph handle() const noexcept { return handle_; }
  std::size_t node_count() const;
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  explicit Graph(CUgraph handle) : handle_(handle) {}
  CUgraph handle_ = nullptr;
};

class GraphExec {
 public:
  GraphExec() = default;
  static GraphExec instantiate(const Graph& graph, ContextRef context);
  ~GraphExec();
  GraphExec(GraphExec&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), context_(std::exchange(other.context_, {})) {}
  GraphExec& operator=(GraphExec&& other) noexcept;
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;

  CUgraphExec handle() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }

  void launch(const StreamRef& stream) const;
  // Takes the parameters of `graph` (same topology, e.g. the same launches captured with new
  // arguments) without re-instantiating. Returns false, leaving this executable graph as it was,
  // when the topology differs: instantiate `graph` anew then.
  bool update(const Graph& graph);

 private:
  CUgraphExec handle_ = nullptr;
  ContextRef context_;
};

}  // namespace kiln::core
