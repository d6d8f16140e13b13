#include "kiln/core/graph.hpp"

#include "core/detail/current.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

Graph Graph::capture(const StreamRef& stream, const std::function<void(const StreamRef&)>& work) {
  if (!stream.handle())
    throw Error(Errc::invalid_argument, "Graph::capture needs a created stream, not the legacy default stream");
  const auto& cu = cuda();
  stream.context().make_current();
  // Thread-local mode: other threads' unsafe calls don't invalidate this capture.
  check(cu.cuStreamBeginCapture(stream.handle(), CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
  try {
    work(stream);
  } catch (...) {
    CUgraph partial = nullptr;
    cu.cuStreamEndCapture(stream.handle(), &partial);
    if (partial) cu.cuGraphDestroy(partial);
    throw;
  }
  CUgraph graph = nullptr;
  check(cu.cuStreamEndCapture(stream.handle(), &graph), "cuStreamEndCapture");
  return Graph(graph);
}

Graph::~Graph() {
  if (handle_) driver::driver_state().api->cuGraphDestroy(handle_);
}

Graph& Graph::operator=(Graph&& other) noexcept {
  if (this != &other) {
    Graph dying(std::move(*this));
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

std::size_t Graph::node_count() const {
  if (!handle_) throw Error(Errc::invalid_handle, "node_count() on an empty Graph");
  std::size_t n = 0;
  check(cuda().cuGraphGetNodes(handle_, nullptr, &n), "cuGraphGetNodes");
  return n;
}

GraphExec GraphExec::instantiate(const Graph& graph, ContextRef context) {
  if (!graph) throw Error(Errc::invalid_handle, "instantiate() of an empty Graph");
  context.make_current();
  GraphExec e;
  check(cuda().cuGraphInstantiateWithFlags(&e.handle_, graph.handle(), 0), "cuGraphInstantiateWithFlags");
  e.context_ = context;
  return e;
}

GraphExec::~GraphExec() {
  if (!handle_) return;
  detail::DestructorContext in_context(context_.handle());
  driver::driver_state().api->cuGraphExecDestroy(handle_);
}

GraphExec& GraphExec::operator=(GraphExec&& other) noexcept {
  if (this != &other) {
    GraphExec dying(std::move(*this));
    handle_ = std::exchange(other.handle_, nullptr);
    context_ = std::exchange(other.context_, {});
  }
  return *this;
}

void GraphExec::launch(const StreamRef& stream) const {
  if (!handle_) throw Error(Errc::invalid_handle, "launch() of an empty GraphExec");
  detail::ensure_current(context_.handle());
  check(cuda().cuGraphLaunch(handle_, stream.handle()), "cuGraphLaunch");
}

bool GraphExec::update(const Graph& graph) {
  if (!handle_ || !graph) throw Error(Errc::invalid_handle, "update() with an empty GraphExec or Graph");
  context_.make_current();
  CUgraphExecUpdateResultInfo info{};
  CUresult r = cuda().cuGraphExecUpdate(handle_, graph.handle(), &info);
  if (r == CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE) return false;
  check(r, "cuGraphExecUpdate");
  return true;
}

}  // namespace kiln::core
