// The C ABI's boundary: every exported function runs its body through guarded(), which turns any
// exception into a kiln_status and a filled kiln_error, so no C++ exception reaches C.
#pragma once

#include <cstddef>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <type_traits>

#include "kiln/driver/error.hpp"
#include "kiln/kiln.h"

namespace kiln::c {

kiln_status status_of(Domain domain) noexcept;
// Fills `error` (when not null) from `e`; `call` names the C function when e names none.
kiln_status fail(kiln_error* error, const Error& e, const char* call) noexcept;

template <typename Body>
kiln_status guarded(kiln_error* error, const char* call, Body&& body) noexcept {
  try {
    body();
    return KILN_OK;
  } catch (const Error& e) {
    return fail(error, e, call);
  } catch (const std::bad_alloc&) {
    return fail(error, Error(Errc::internal, std::string(call) + ": out of host memory"), call);
  } catch (const std::exception& e) {
    return fail(error, Error(Errc::internal, std::string(call) + ": unexpected exception: " + e.what()), call);
  } catch (...) {
    return fail(error, Error(Errc::internal, std::string(call) + ": unexpected exception of unknown type"), call);
  }
}

// A handle argument: refuses NULL with invalid_handle, naming the call and the parameter.
template <typename Handle>
Handle& need(Handle* handle, const char* call, const char* parameter) {
  if (handle == nullptr) [[unlikely]]
    throw Error(Errc::invalid_handle,
                std::string(call) + ": " + parameter + " is NULL (never created, or already destroyed)");
  return *handle;
}
template <typename Handle>
const Handle& need(const Handle* handle, const char* call, const char* parameter) {
  return need(const_cast<Handle*>(handle), call, parameter);
}

// An out-parameter or required pointer argument: refuses NULL with invalid_argument.
template <typename T>
T* need_pointer(T* pointer, const char* call, const char* parameter) {
  if (pointer == nullptr) [[unlikely]]
    throw Error(Errc::invalid_argument, std::string(call) + ": " + parameter + " is NULL");
  return pointer;
}

// Writes an extensible result struct: the members that fit in the caller's out.size (an older
// caller's struct is shorter), leaving out.size as it was. Refuses a size too small to be one.
template <typename Struct>
void write_out(Struct& out, const Struct& full, const char* call) {
  if (out.size <= sizeof(out.size))
    throw Error(Errc::invalid_argument, std::string(call) + ": the result struct's size is " +
                                            std::to_string(out.size) + ": set it to sizeof the struct");
  const std::size_t size = out.size < sizeof(Struct) ? out.size : sizeof(Struct);
  std::memcpy(reinterpret_cast<char*>(&out) + sizeof(out.size), reinterpret_cast<const char*>(&full) + sizeof(out.size),
              size - sizeof(out.size));
}

// The number a C caller stored in an enum. C allows any int there; in C++ loading an enum outside
// its enumerators' range is undefined, so the bytes are read as the underlying integer.
template <typename Enum>
std::underlying_type_t<Enum> raw(const Enum& value) noexcept {
  std::underlying_type_t<Enum> n;
  std::memcpy(&n, &value, sizeof n);
  return n;
}

// A copy of `text` for the caller, released with kiln_free().
char* duplicate(std::string_view text);

}  // namespace kiln::c

// Whether the caller's extensible struct (first member `size_t size`) is large enough to hold
// `member`: an older caller's struct ends earlier, and kiln reads only what it has.
#define KILN_C_HAS(object, member) \
  ((object).size >= offsetof(std::remove_cvref_t<decltype(object)>, member) + sizeof((object).member))
