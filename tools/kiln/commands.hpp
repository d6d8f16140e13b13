// The subcommands of the kiln CLI. Each registers itself on the app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>

namespace kiln::cli {

// Exit codes shared by every subcommand (documented in `kiln --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitProblems = 1;
inline constexpr int kExitUsage = 2;

// Each returns the exit code of its subcommand through `exit_code`.
void add_doctor_command(CLI::App& app, int& exit_code);
void add_explain_command(CLI::App& app, int& exit_code);
void add_compile_command(CLI::App& app, int& exit_code);
void add_cache_command(CLI::App& app, int& exit_code);
void add_topo_command(CLI::App& app, int& exit_code);
void add_pack_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);  // only when built with the service

}  // namespace kiln::cli
