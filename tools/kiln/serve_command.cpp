// kiln serve: kilnd's server in this process, with kilnd's flags.
#include "../kilnd/serve_app.hpp"
#include "commands.hpp"

namespace kiln::cli {

void add_serve_command(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* serve = app.add_subcommand("serve", "run kilnd's HTTP service in this process (same flags as kilnd)");
  add_serve_options(*serve, *flags);
  serve->callback([flags, &exit_code] { exit_code = run_serve(*flags, "kiln serve"); });
}

}  // namespace kiln::cli
