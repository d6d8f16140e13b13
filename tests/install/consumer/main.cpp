// A program outside kiln's tree, built against the installed package.
#include <kiln/driver/cuda_api.hpp>
#include <kiln/driver/error.hpp>
#include <kiln/version.hpp>

#include <iostream>

int main() {
  const kiln::ErrorInfo* e = kiln::find_error("CUDA_ERROR_ILLEGAL_ADDRESS");
  if (!e) return 1;
  std::cout << "kiln " << KILN_VERSION << ": " << e->name << " sticky=" << e->sticky
            << " driver loaded=" << (kiln::driver::driver_state().api != nullptr) << "\n";
  return 0;
}
