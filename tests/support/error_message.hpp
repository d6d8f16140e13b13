// The message of the kiln::Error a callable throws, for tests that check what an error says.
#pragma once

#include <string>

#include "kiln/driver/error.hpp"

namespace kiln::testing {

template <typename F>
std::string error_message_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace kiln::testing
