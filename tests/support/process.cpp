#include "support/process.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kiln/driver/error.hpp"
#include "kiln/ipc/spawn.hpp"

namespace kiln::testing {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A new empty file, open for writing (close-on-exec here; mapped onto the child's 1 or 2).
std::pair<std::string, ipc::UniqueFd> temp_file() {
  char name[] = "/tmp/kiln-test-XXXXXX";
  ipc::UniqueFd fd(::mkostemp(name, O_CLOEXEC));
  if (!fd) throw std::runtime_error("mkstemp failed");
  return {name, std::move(fd)};
}

}  // namespace

std::string emulator_command() {
  const char* e = std::getenv("KILN_TEST_EMULATOR");
  return e ? e : "";
}

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  auto [out_path, out] = temp_file();
  auto [err_path, err] = temp_file();
  ipc::SpawnOptions spawn;
  spawn.program = argv.at(0);
  spawn.search_path = true;  // as execvp: "nvidia-smi" is looked up in $PATH
  spawn.arguments.assign(argv.begin() + 1, argv.end());
  // A cross-built test runs under an emulator (KILN_TEST_EMULATOR, e.g. "qemu-aarch64 -L <root>":
  // cmake/toolchains/aarch64-linux-gnu.cmake) that does not follow execve: a program of this build
  // is started through it, host programs as they are.
  const std::string emulator = emulator_command();
  if (!emulator.empty() && spawn.program.string().starts_with(KILN_BINARY_DIR)) {
    std::vector<std::string> words;
    std::istringstream in(emulator);
    for (std::string w; in >> w;) words.push_back(w);
    spawn.arguments.insert(spawn.arguments.begin(), spawn.program.string());
    spawn.arguments.insert(spawn.arguments.begin(), words.begin() + 1, words.end());
    spawn.program = words.front();
  }
  spawn.fds = {{1, out.get()}, {2, err.get()}};
  for (const auto& name : options.unset_env) spawn.environment[name] = std::nullopt;
  for (const auto& [name, value] : options.set_env) spawn.environment[name] = value;
  ProcessResult r;
  try {
    r.exit_code = ipc::spawn(spawn).wait().shell_code();
    r.out = slurp(out_path);
    r.err = slurp(err_path);
  } catch (const Error& e) {
    r.exit_code = 127;  // what a shell answers for a program it cannot run
    r.err = e.what();
  }
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return r;
}

std::string cli_path() { return KILN_CLI_PATH; }

}  // namespace kiln::testing
