// jit::PolicyError: a SourcePolicy rule refused a program. The rule travels as a field, so callers
// (a service mapping it to its own answer) never parse the message.
//
// Thread safety: a value, like kiln::Error.
#pragma once

#include <source_location>
#include <string>

#include "kiln/driver/error.hpp"

namespace kiln::jit {

// A kiln::Error with kiln's code for the case (Errc::invalid_argument; Errc::timeout for a compile
// past max_compile_time), so code that matches the code still works, and the rule's name
// ("include", "max_compile_time", ...: the names SourcePolicy's members document). Its detail reads
// "source policy rule '<rule>' (<limit>): <what>", without " (<limit>)" when `limit` is empty.
class PolicyError : public Error {
 public:
  PolicyError(std::string rule, std::string limit, const std::string& what, Errc code = Errc::invalid_argument,
              std::source_location where = std::source_location::current());
  const std::string& rule() const noexcept { return rule_; }
  // The rule's limit as the message states it ("3000 ms", "64 MiB"); empty for the rules whose
  // message states it in `what` or that have none.
  const std::string& limit() const noexcept { return limit_; }

 private:
  std::string rule_;
  std::string limit_;
};

}  // namespace kiln::jit
