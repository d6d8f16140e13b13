// kiln_error as Python exceptions. The classes live in kiln/errors.py; it hands its factory to
// this module at import, so the native side only gathers the fields.
#include <array>

#include "native.hpp"

namespace kiln_python {
namespace {

// Leaked on purpose: a py::object destroyed after the interpreter is gone would crash at exit.
py::object& factory() {
  static auto* f = new py::object();
  return *f;
}

const char* text(const char* s) { return s != nullptr ? s : ""; }

py::tuple entry(const kiln_error& e) {
  return py::make_tuple(static_cast<int>(e.domain), e.code, e.sticky != 0, text(e.name), text(e.message),
                        text(e.hint));
}

}  // namespace

void raise(const kiln_error& error, const py::dict& extra) {
  if (!factory()) {
    PyErr_SetString(PyExc_RuntimeError, text(error.message));
    throw py::error_already_set();
  }
  py::object exception = factory()(static_cast<int>(error.domain), error.code, error.sticky != 0,
                                   text(error.name), text(error.message), text(error.hint), text(error.call),
                                   extra);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
  throw py::error_already_set();
}

void raise_invalid(const std::string& message) {
  ErrorBox box;
  kiln_error_lookup(KILN_ERROR_KILN, KILN_ERRC_INVALID_ARGUMENT, &box.error);
  kiln_error e = box.error;
  e.message = const_cast<char*>(message.c_str());
  raise(e);
}

void register_errors(py::module_& m) {
  m.def("_set_error_factory", [](py::object f) { factory() = std::move(f); });
  // (domain, code, sticky, name, description, hint) of a table entry, or None.
  m.def("_lookup", [](int domain, int code) -> py::object {
    ErrorBox box;
    if (kiln_error_lookup(static_cast<kiln_status>(domain), code, &box.error) != KILN_OK) return py::none();
    return entry(box.error);
  });
  // Every entry a text names, as `kiln explain` reads it.
  m.def("_find", [](const std::string& what) {
    std::array<kiln_error, 16> found{};
    size_t count = 0;
    checked([&](kiln_error* e) { return kiln_error_find(what.c_str(), found.data(), found.size(), &count, e); });
    py::list out;
    for (std::size_t i = 0; i < count && i < found.size(); ++i) {
      out.append(entry(found[i]));
      kiln_error_clear(&found[i]);
    }
    return out;
  });
}

}  // namespace kiln_python
