#include "kiln/service/gpu_worker_protocol.hpp"

#include <cstring>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // the hosts are little-endian x86-64 and arm64
  out.append(b, sizeof(T));
}

}  // namespace

ipc::ChannelOptions gpu_worker_channel(std::string peer, std::chrono::microseconds spin) {
  ipc::ChannelOptions o;
  o.peer = std::move(peer);
  o.spin = spin;
  o.max_frame_bytes = kMaxGpuWorkerFrameBytes;
  o.first_type = static_cast<std::uint32_t>(GpuWorkerFrame::ready);
  o.last_type = static_cast<std::uint32_t>(GpuWorkerFrame::forget_image);
  return o;
}

PayloadWriter& PayloadWriter::u8(std::uint8_t v) { return put(out_, v), *this; }
PayloadWriter& PayloadWriter::u32(std::uint32_t v) { return put(out_, v), *this; }
PayloadWriter& PayloadWriter::u64(std::uint64_t v) { return put(out_, v), *this; }
PayloadWriter& PayloadWriter::f64(double v) { return put(out_, v), *this; }
PayloadWriter& PayloadWriter::bytes(std::string_view v) {
  u32(static_cast<std::uint32_t>(v.size()));
  out_.append(v);
  return *this;
}

void PayloadReader::need(std::size_t n) const {
  if (in_.size() - pos_ < n)
    throw Error(Errc::invalid_argument, "GPU worker protocol: payload ends " +
                                            std::to_string(n - (in_.size() - pos_)) + " bytes early");
}

#define KILN_READ(T)                             \
  need(sizeof(T));                               \
  T v;                                           \
  std::memcpy(&v, in_.data() + pos_, sizeof(T)); \
  pos_ += sizeof(T);                             \
  return v

std::uint8_t PayloadReader::u8() { KILN_READ(std::uint8_t); }
std::uint32_t PayloadReader::u32() { KILN_READ(std::uint32_t); }
std::uint64_t PayloadReader::u64() { KILN_READ(std::uint64_t); }
double PayloadReader::f64() { KILN_READ(double); }
#undef KILN_READ

std::string PayloadReader::bytes() {
  const std::uint32_t n = u32();
  need(n);
  std::string v(in_.substr(pos_, n));
  pos_ += n;
  return v;
}

}  // namespace kiln::service
