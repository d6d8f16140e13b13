// libFuzzer target for kilnd's request parser: any bytes, as any of the three JSON bodies, must be
// accepted or refused with a RequestError, never crash, hang or leak (built with ASan + UBSan).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/service/requests.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  using namespace kiln::service;
  auto launch = parse_launch_request(body, RequestLimits{16});
  if (!launch.ok() && launch.error().text().empty()) __builtin_trap();  // a refusal always says why
  auto kernel = parse_kernel_request(body);
  if (!kernel.ok() && kernel.error().text().empty()) __builtin_trap();
  auto buffer = parse_buffer_request(body);
  if (buffer.ok() && buffer.value().bytes == 0) __builtin_trap();  // bytes >= 1 is promised
  return 0;
}
