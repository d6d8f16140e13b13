// What the parts of kiln._native share: errors raised as kiln's Python exceptions, and the calls
// into the C ABI that check the status they return.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>

#include "kiln/kiln.h"

namespace kiln_python {

namespace py = pybind11;

// A kiln_error that releases its strings.
struct ErrorBox {
  kiln_error error{};
  ErrorBox() = default;
  ErrorBox(const ErrorBox&) = delete;
  ErrorBox& operator=(const ErrorBox&) = delete;
  ~ErrorBox() { kiln_error_clear(&error); }
};

// Raises the kiln.Error subclass for `error` (kiln.errors._from_native picks it); `extra` becomes
// keyword arguments of the exception: diagnostics, requested bytes, ...
[[noreturn]] void raise(const kiln_error& error, const py::dict& extra = py::dict());
// A kiln.InvalidArgumentError (or TypeError-like refusal) raised by the binding itself.
[[noreturn]] void raise_invalid(const std::string& message);

// Calls f(kiln_error*) and raises what it fails with.
template <class F>
void checked(F&& f) {
  ErrorBox box;
  if (std::forward<F>(f)(&box.error) != KILN_OK) raise(box.error);
}

// The same without the GIL, for calls that compile, copy or wait.
template <class F>
void checked_nogil(F&& f) {
  ErrorBox box;
  kiln_status status;
  {
    py::gil_scoped_release release;
    status = std::forward<F>(f)(&box.error);
  }
  if (status != KILN_OK) raise(box.error);
}

// The default stream kiln uses on a device when a call names none: one non-blocking stream per
// device for the whole process, made on first use.
kiln_stream* default_stream(int device);

void register_errors(py::module_& m);
void register_environment(py::module_& m);
void register_compiling(py::module_& m);
void register_streams(py::module_& m);
void register_memory(py::module_& m);
void register_launching(py::module_& m);

}  // namespace kiln_python
