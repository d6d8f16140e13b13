// kilnd: the kiln service daemon. `kiln serve` runs the same server (tools/kilnd/serve_app.hpp).
#include <iostream>

#include "kiln/version.hpp"
#include "serve_app.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kilnd: HTTP service that compiles, schedules and runs CUDA kernels (docs/SERVICE.md)", "kilnd"};
  app.set_version_flag("--version", std::string("kilnd ") + KILN_VERSION);
  kiln::cli::ServeFlags flags;
  kiln::cli::add_serve_options(app, flags);
  app.footer("Exit codes: 0 stopped cleanly (SIGINT/SIGTERM); 1 could not start; 2 bad usage.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return kiln::cli::run_serve(flags, "kilnd");
}
