// Errors, strings and versions of the C ABI.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "c/detail/boundary.hpp"
#include "kiln/version.hpp"

namespace kiln::c {

kiln_status status_of(Domain domain) noexcept {
  switch (domain) {
    case Domain::driver: return KILN_ERROR_DRIVER;
    case Domain::nvrtc: return KILN_ERROR_NVRTC;
    case Domain::nvml: return KILN_ERROR_NVML;
    case Domain::kiln: return KILN_ERROR_KILN;
    case Domain::nvjitlink: return KILN_ERROR_NVJITLINK;
  }
  return KILN_ERROR_KILN;
}

char* duplicate(std::string_view text) {
  char* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (copy == nullptr) throw std::bad_alloc();
  std::memcpy(copy, text.data(), text.size());
  copy[text.size()] = '\0';
  return copy;
}

namespace {

// Like duplicate(), but never throws: an error being reported must not fail for lack of memory.
char* duplicate_or_null(std::string_view text) noexcept {
  char* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (copy != nullptr) {
    std::memcpy(copy, text.data(), text.size());
    copy[text.size()] = '\0';
  }
  return copy;
}

void fill(kiln_error* error, kiln_status domain, int code, bool sticky, std::string_view name,
          std::string_view message, std::string_view hint, std::string_view call) noexcept {
  kiln_error_clear(error);
  error->domain = domain;
  error->code = code;
  error->sticky = sticky ? 1 : 0;
  error->name = duplicate_or_null(name);
  error->message = duplicate_or_null(message);
  error->hint = duplicate_or_null(hint);
  error->call = duplicate_or_null(call);
}

std::atomic<std::uint64_t> leaks_reported{0};

}  // namespace

kiln_status fail(kiln_error* error, const Error& e, const char* call) noexcept {
  const kiln_status status = status_of(e.domain());
  if (error != nullptr)
    fill(error, status, e.code(), e.sticky(), e.name(), e.what(), e.hint(), e.call().empty() ? call : e.call());
  return status;
}

}  // namespace kiln::c

using namespace kiln;

extern "C" {

void kiln_error_clear(kiln_error* error) {
  if (error == nullptr) return;
  std::free(error->name);
  std::free(error->message);
  std::free(error->hint);
  std::free(error->call);
  *error = kiln_error{};
}

kiln_status kiln_error_lookup(kiln_status domain, int code, kiln_error* error) {
  Domain d;
  const auto number = c::raw(domain);
  if (number == KILN_ERROR_DRIVER)
    d = Domain::driver;
  else if (number == KILN_ERROR_NVRTC)
    d = Domain::nvrtc;
  else if (number == KILN_ERROR_NVML)
    d = Domain::nvml;
  else if (number == KILN_ERROR_KILN)
    d = Domain::kiln;
  else if (number == KILN_ERROR_NVJITLINK)
    d = Domain::nvjitlink;
  else
    return c::fail(error, Error(Errc::invalid_argument, "kiln_error_lookup: " + std::to_string(number) +
                                                            " is not a kiln_status naming a domain"),
                   "kiln_error_lookup");
  const ErrorInfo* info = find_error(d, code);
  if (info == nullptr)
    return c::fail(error, Error(Errc::invalid_argument, "kiln_error_lookup: code " + std::to_string(code) +
                                                            " is not in kiln's table for " +
                                                            std::string(to_string(d))),
                   "kiln_error_lookup");
  if (error != nullptr)
    c::fill(error, domain, code, info->sticky, info->name, info->description, info->hint, "");
  return KILN_OK;
}

kiln_status kiln_error_find(const char* text, kiln_error* found, size_t capacity, size_t* count, kiln_error* error) {
  return c::guarded(error, "kiln_error_find", [&] {
    c::need_pointer(text, "kiln_error_find", "text");
    size_t& n = *c::need_pointer(count, "kiln_error_find", "count");
    if (capacity > 0) c::need_pointer(found, "kiln_error_find", "found");
    const std::vector<const ErrorInfo*> entries = lookup_errors(text);
    n = entries.size();
    for (std::size_t i = 0; i < entries.size() && i < capacity; ++i) {
      const ErrorInfo& e = *entries[i];
      c::fill(&found[i], c::status_of(e.domain), e.code, e.sticky, e.name, e.description, e.hint, "");
    }
  });
}

void kiln_free(void* p) { std::free(p); }

const char* kiln_version(void) { return KILN_VERSION; }
int kiln_abi_version(void) { return KILN_ABI_VERSION; }

void kiln_report_leak(const char* what) {
  c::leaks_reported.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "kiln: LEAK: %s\n", what != nullptr ? what : "(unnamed)");
}

uint64_t kiln_leaks_reported(void) { return c::leaks_reported.load(std::memory_order_relaxed); }

}  // extern "C"
