// kiln._native: the C ABI (kiln.h, libkiln.so) for Python. The package kiln wraps it; only the
// launch path is meant to be called per kernel.
#include "native.hpp"

PYBIND11_MODULE(_native, m) {
  m.doc() = "kiln's C ABI for Python (use the kiln package)";
  if (kiln_abi_version() != KILN_ABI_VERSION)
    throw std::runtime_error("kiln._native was built for kiln ABI " + std::to_string(KILN_ABI_VERSION) +
                             " but loaded libkiln.so of ABI " + std::to_string(kiln_abi_version()));
  kiln_python::register_errors(m);
  kiln_python::register_environment(m);
  kiln_python::register_compiling(m);
  kiln_python::register_streams(m);
  kiln_python::register_memory(m);
  kiln_python::register_launching(m);
}
