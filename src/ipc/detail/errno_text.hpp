// "No such file or directory (errno 2)": errno in words and as a number, for ipc's messages.
#pragma once

#include <cstring>
#include <string>

namespace kiln::ipc::detail {

inline std::string errno_text(int err) {
  const char* text = ::strerrordesc_np(err);  // thread-safe, unlike strerror
  return std::string(text ? text : "unknown error") + " (errno " + std::to_string(err) + ")";
}

}  // namespace kiln::ipc::detail
