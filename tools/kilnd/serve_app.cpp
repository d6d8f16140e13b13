#include "serve_app.hpp"

#include <malloc.h>
#include <sys/resource.h>

#include <csignal>
#include <iostream>
#include <memory>
#include <mutex>

#include "kiln/driver/error.hpp"
#include "kiln/service/config.hpp"
#include "kiln/service/no_gpu_backend.hpp"
#include "kiln/service/server.hpp"
#include "kiln/service/token_store.hpp"
#include "kiln/service/worker_event_log.hpp"
#include "kiln/service/ipc_socket_server.hpp"
#include "kiln/service/worker_pool.hpp"
#include "kiln/topology/topology.hpp"
#ifdef KILN_HAVE_GRPC
#include "grpc_server.hpp"
#endif

namespace kiln::cli {

namespace {

// WorkerPool's events go to the log from the start, and to the server (the status page's
// failures) once it exists and until it goes: the pool is made before the server and outlives it.
class WorkerEventForward {
 public:
  void attach(service::Server* server) {
    std::lock_guard lock(mutex_);
    server_ = server;
  }
  void deliver(const service::WorkerEvent& event) {
    std::lock_guard lock(mutex_);
    if (server_) server_->worker_event(event);
  }
  struct Detach {
    WorkerEventForward& forward;
    ~Detach() { forward.attach(nullptr); }
  };

 private:
  std::mutex mutex_;
  service::Server* server_ = nullptr;
};

}  // namespace

void add_serve_options(CLI::App& app, ServeFlags& flags) {
  app.add_option("--config", flags.config_file, "JSON settings file (docs/SERVICE.md lists the keys)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", flags.listen, "address to listen on (default 127.0.0.1: loopback only)");
  app.add_option("--port", flags.port, "TCP port (default 8470; 0 picks a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--grpc-port", flags.grpc_port,
                 "also serve gRPC (proto/kiln/v1/kilnd.proto) on this TCP port of the --listen address (default 0: off)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--ipc-socket", flags.ipc_socket,
                 "also serve co-located clients on this Unix socket path: CUDA IPC of buffers, with allow_client_ipc "
                 "(docs/SERVICE.md)");
  app.add_option("--tokens", flags.tokens_file,
                 "tokens file, one 'tenant token' pair per line, readable by its owner only (default: one generated "
                 "token, printed once)");
  app.add_flag("--allow-insecure-tokens", flags.allow_insecure_tokens,
               "start even when the tokens file may be read or written by its group or other users (a warning is printed)");
  app.add_option("--cache-dir", flags.cache_dir, "kernel cache folder (default $KILN_CACHE_DIR or ~/.cache/kiln)");
  app.add_option("--max-body-bytes", flags.max_body_bytes, "largest request body accepted (default 64 MiB)");
  app.add_option("--http-threads", flags.http_threads, "threads serving HTTP requests (default 16)");
  app.add_option("--queue", flags.queue,
                 "where compile jobs queue: 'memory' (default: this process) or redis://host[:port][/db] / "
                 "unix:///socket, shared with other kilnd nodes");
  app.add_option("--node-name", flags.node_name, "this node's name in the shared queue (default <hostname>-<pid>)");
  app.add_option("--log-format", flags.log_format, "log lines as 'text' (default) or 'json' (one object a line)")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", flags.log_level, "least level logged: debug, info (default), warn, error, off")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}));
  app.add_option("--log-file", flags.log_file, "append the log to this file instead of standard error");
  app.add_option("--repository", flags.repository,
                 "serve the kernel packages in this folder, DIR/<name>/<version>/ (docs/REPOSITORY.md)");
  app.add_option("--repository-mode", flags.repository_mode,
                 "'none' (load at start; default), 'explicit' (load and unload by API) or 'poll' (watch the folder)")
      ->check(CLI::IsMember({"none", "explicit", "poll"}));
  app.add_option("--repository-poll-ms", flags.repository_poll_ms, "how often poll mode reads the folder (default 2000)")
      ->check(CLI::Range(10, 3600000));
}

int run_serve(const ServeFlags& flags, const std::string& program) {
  // Request bodies are large, short-lived buffers (up to max_json_bytes, uploads up to
  // max_body_bytes). glibc raises its mmap threshold to the largest block freed so far (up to
  // 32 MiB), after which such buffers come from the per-thread heaps and stay with the process when
  // freed: 16 threads each kept their last bodies. A fixed threshold (which also fixes the trim
  // threshold) keeps every block of 256 KiB or more mapped on its own, returned when freed.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // Each connection is a descriptor: the soft limit (often 1024) is raised to the hard one, so
  // max_connections rather than the default limit bounds how many clients kilnd holds.
  if (rlimit files{}; getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  // Block the signals kilnd handles before any thread starts, so every thread inherits the mask and only
  // sigwait below receives them.
  sigset_t handled_signals;
  sigemptyset(&handled_signals);
  sigaddset(&handled_signals, SIGINT);
  sigaddset(&handled_signals, SIGTERM);
  sigaddset(&handled_signals, SIGHUP);  // not a stop: the log file is opened again (logrotate)
  pthread_sigmask(SIG_BLOCK, &handled_signals, nullptr);
  try {
    service::ServiceConfig config = flags.config_file.empty() ? service::ServiceConfig{}
                                                              : service::load_config_file(flags.config_file);
    if (flags.listen) config.listen_address = *flags.listen;
    if (flags.port) config.port = *flags.port;
    if (flags.grpc_port) config.grpc_port = *flags.grpc_port;
    if (flags.ipc_socket) config.ipc_socket = *flags.ipc_socket;
    if (flags.tokens_file) config.tokens_file = *flags.tokens_file;
    if (flags.allow_insecure_tokens) config.allow_insecure_tokens = true;
    if (flags.cache_dir) config.cache_dir = *flags.cache_dir;
    if (flags.max_body_bytes) config.max_body_bytes = *flags.max_body_bytes;
    if (flags.http_threads) config.http_threads = *flags.http_threads;
    if (flags.queue) config.queue_url = *flags.queue;
    if (flags.node_name) config.node_name = *flags.node_name;
    if (flags.log_format) config.log_format = *service::parse_log_format(*flags.log_format);  // checked by CLI11
    if (flags.log_level) config.log_level = *service::parse_log_level(*flags.log_level);
    if (flags.log_file) config.log_file = *flags.log_file;
    if (flags.repository) config.repository.path = *flags.repository;
    if (flags.repository_mode) config.repository.mode = *service::parse_repository_mode(*flags.repository_mode);
    if (flags.repository_poll_ms) config.repository.poll_interval = std::chrono::milliseconds(*flags.repository_poll_ms);
    service::validate(config);
#ifndef KILN_HAVE_GRPC
    if (config.grpc_port != 0)
      throw Error(Errc::invalid_argument, "grpc_port " + std::to_string(config.grpc_port) +
                                              ": this kilnd was built without gRPC (KILN_WITH_GRPC; libgrpc++-dev)");
#endif
    const service::Log log = service::Log::open({config.log_format, config.log_level, config.log_file});

    service::TokenStore tokens;
    if (config.tokens_file.empty()) {
      const std::string token = service::generate_token();
      tokens = service::TokenStore::single("default", token);
      std::cout << program << ": no tokens file given; tenant 'default' may use this token (shown once, not stored):\n"
                << "  " << token << "\n";
    } else {
      std::string warning;
      tokens = service::TokenStore::load(config.tokens_file, config.allow_insecure_tokens, &warning);
      if (!warning.empty()) {
        std::cerr << program << ": " << warning << std::endl;
        log.warn("tokens_insecure", warning, {{"file", config.tokens_file.string()}});
      }
    }

    // With a driver and a GPU: a worker process per GPU, and the machine's topology for placement.
    const auto worker_events = std::make_shared<WorkerEventForward>();
    std::unique_ptr<service::GpuBackend> backend;
    std::shared_ptr<const topology::Topology> topology;
    if (const std::string why = service::why_no_gpu(); why.empty()) {
      service::WorkerPoolOptions workers;
      workers.mode = config.gpu_mode;
      workers.modes = config.gpu_modes;
      workers.streams_per_gpu = config.streams_per_gpu;
      workers.spin = config.spin;
      // The log, and the status page's failures once the server exists (events before it are logged only).
      workers.on_event = [log_event = service::log_worker_events(log), forward = worker_events](const service::WorkerEvent& e) {
        log_event(e);
        forward->deliver(e);
      };
      backend = std::make_unique<service::WorkerPool>(workers);
      for (const auto& d : backend->devices()) {
        std::cout << program << ": GPU " << d.ordinal << " " << d.name << " (" << d.uuid << ", " << d.pci_bus_id
                  << "): worker " << (d.worker_up ? "up" : "DOWN: " + d.last_failure) << "\n";
        if (service::gpu_mode_of(config, d.ordinal) == service::GpuMode::concurrent)
          std::cout << program << ": GPU " << d.ordinal << " concurrent: up to " << config.streams_per_gpu
                    << " launches at once (a sticky fault aborts the others in flight)\n";
      }
      try {
        topology = std::make_shared<const topology::Topology>(topology::discover());
      } catch (const Error& e) {
        std::cout << program << ": placing work without the topology: " << e.what() << "\n";
        log.warn("no_topology", std::string("placing work without the topology: ") + e.what());
      }
    } else {
      backend = service::make_no_gpu_backend();
      log.warn("no_gpu", "no GPU work possible (" + why + "); kernels can be registered, buffers and launches answer 503");
      std::cout << program << ": no GPU work possible (" << why
                << "); kernels can be registered, buffers and launches answer 503\n";
    }

    service::Server server(config, std::move(tokens), *backend, topology, log);
    worker_events->attach(&server);
    const WorkerEventForward::Detach detach{*worker_events};  // before `server` goes, however run_serve ends
    server.start();
    if (!config.queue_url.empty() && config.queue_url != "memory")
      std::cout << program << ": compile jobs go through the shared queue at " << config.queue_url << "\n";
    std::cout << program << ": listening on http://" << config.listen_address << ":" << server.port() << std::endl;
#ifdef KILN_HAVE_GRPC
    // Beside HTTP over the same core and tokens; stopped first, so no call is in the core when the
    // HTTP server's stop frees the buffers.
    std::unique_ptr<service::GrpcServer> grpc;
    if (config.grpc_port != 0) {
      grpc = std::make_unique<service::GrpcServer>(server.core(), server.tokens(), service::grpc_options(config), log);
      grpc->start();
      std::cout << program << ": serving gRPC on " << config.listen_address << ":" << grpc->port() << std::endl;
    }
#endif

    // Also stopped before HTTP; its clients' imported buffers go with the core's.
    std::unique_ptr<service::IpcSocketServer> ipc_socket;
    if (!config.ipc_socket.empty()) {
      ipc_socket = std::make_unique<service::IpcSocketServer>(server.core(), server.tokens(), config.ipc_socket, log);
      ipc_socket->start();
      std::cout << program << ": serving the IPC socket on " << config.ipc_socket << std::endl;
    }

    int signal = 0;
    for (;;) {
      sigwait(&handled_signals, &signal);
      if (signal != SIGHUP) break;
      try {
        log.reopen();
        log.info("log_reopened", "SIGHUP received: the log file was opened again");
      } catch (const Error& e) {
        std::cerr << program << ": SIGHUP: " << e.what() << " (logging on to the file already open)\n";
      }
    }
    std::cout << program << ": " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
              << ": draining (up to " << config.drain_timeout.count() << " ms) and stopping" << std::endl;
    log.info("shutdown", std::string(signal == SIGINT ? "SIGINT" : "SIGTERM") + " received: stopping",
             {{"phase", "signal"}, {"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
    if (ipc_socket) {
      server.begin_drain();
      ipc_socket->stop();
    }
#ifdef KILN_HAVE_GRPC
    if (grpc) {
      // New calls of either front end are refused from here; those in progress get the drain time.
      server.begin_drain();
      grpc->stop(config.drain_timeout);
    }
#endif
    server.stop();
    std::cout << program << ": stopped" << std::endl;
    return 0;
  } catch (const Error& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace kiln::cli
