// `kiln explain CODE`: what a CUDA, NVRTC, NVML or kiln error code means and what to do.
#include <iostream>

#include "commands.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::cli {

void add_explain_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("explain", "Explain an error code: name (CUDA_ERROR_ILLEGAL_ADDRESS), "
                                            "number (700) or domain:number (nvrtc:6)");
  cmd->footer("Exit codes: 0 found; 1 unknown code; 2 bad usage.");
  auto code = std::make_shared<std::string>();
  cmd->add_option("code", *code, "the code to explain")->required();
  cmd->callback([code, &exit_code] {
    auto found = lookup_errors(*code);
    if (found.empty()) {
      std::cerr << "kiln explain: no CUDA, NVRTC, NVML or kiln error is called or numbered '" << *code
                << "'\n";
      exit_code = kExitProblems;
      return;
    }
    bool first = true;
    for (const ErrorInfo* e : found) {
      if (!first) std::cout << "\n";
      first = false;
      std::cout << e->name << " (" << to_string(e->domain) << " error " << e->code << ")\n"
                << "  meaning: " << e->description << "\n"
                << "  hint:    " << e->hint << "\n"
                << "  sticky:  "
                << (e->sticky ? "yes: the CUDA context is unusable; only a new process recovers"
                              : "no")
                << "\n";
    }
    exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
