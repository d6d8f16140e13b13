#include "kiln/jit/policy_error.hpp"

#include <utility>

namespace kiln::jit {
namespace {

std::string policy_detail(const std::string& rule, const std::string& limit, const std::string& what) {
  std::string d = "source policy rule '" + rule + "'";
  if (!limit.empty()) d += " (" + limit + ")";
  return d + ": " + what;
}

}  // namespace

PolicyError::PolicyError(std::string rule, std::string limit, const std::string& what, Errc code,
                         std::source_location where)
    : Error(code, policy_detail(rule, limit, what), where), rule_(std::move(rule)), limit_(std::move(limit)) {}

}  // namespace kiln::jit
