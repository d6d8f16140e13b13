#include <iostream>

#include "commands.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kiln: run dynamically compiled CUDA kernels in production", "kiln"};
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success; 1 the command ran and found problems (or failed); 2 bad usage; 3 no GPU "
      "(kiln topo). Each subcommand's --help says more.");
  int exit_code = kiln::cli::kExitOk;
  kiln::cli::add_doctor_command(app, exit_code);
  kiln::cli::add_explain_command(app, exit_code);
  kiln::cli::add_compile_command(app, exit_code);
  kiln::cli::add_cache_command(app, exit_code);
  kiln::cli::add_topo_command(app, exit_code);
  kiln::cli::add_pack_command(app, exit_code);
#ifdef KILN_HAVE_SERVICE
  kiln::cli::add_serve_command(app, exit_code);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kiln::cli::kExitUsage;
  } catch (const kiln::Error& e) {
    std::cerr << "kiln: " << e.what() << "\n";
    return kiln::cli::kExitProblems;
  }
  return exit_code;
}
