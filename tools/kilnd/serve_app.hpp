// The one way to start kilnd's server from a command line, shared by `kilnd` and `kiln serve`:
// the same flags, the same configuration rules (file first, flags over it), the same start-up
// messages, and a clean stop on SIGINT or SIGTERM.
//
// Thread safety: run_serve() is called once, from main's thread.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace kiln::cli {

struct ServeFlags {
  std::string config_file;
  std::optional<std::string> listen;
  std::optional<int> port;
  std::optional<int> grpc_port;
  std::optional<std::string> ipc_socket;
  std::optional<std::string> tokens_file;
  bool allow_insecure_tokens = false;
  std::optional<std::string> cache_dir;
  std::optional<std::size_t> max_body_bytes;
  std::optional<int> http_threads;
  std::optional<std::string> queue;
  std::optional<std::string> node_name;
  std::optional<std::string> log_format;
  std::optional<std::string> log_level;
  std::optional<std::string> log_file;
  std::optional<std::string> repository;
  std::optional<std::string> repository_mode;
  std::optional<int> repository_poll_ms;
};

void add_serve_options(CLI::App& app, ServeFlags& flags);

// Serves until SIGINT or SIGTERM, then shuts down gracefully. Returns the process exit code: 0
// after a clean stop, 1 when the server cannot start (the reason is printed).
int run_serve(const ServeFlags& flags, const std::string& program);

}  // namespace kiln::cli
