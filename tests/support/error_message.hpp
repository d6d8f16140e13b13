// The kiln::Error a callable throws (or its message), for tests that check what an error says.
#pragma once

#include <gtest/gtest.h>

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

// The error itself; a test failure (and an internal error in its place) when nothing is thrown.
template <typename F>
Error error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no kiln::Error was thrown";
  return Error(Errc::internal, "nothing thrown");
}

}  // namespace kiln::testing
