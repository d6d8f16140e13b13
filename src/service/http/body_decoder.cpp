#include "http/body_decoder.hpp"

#include <zlib.h>

#include <array>

#include "http/message.hpp"

namespace kiln::service::http {

bool parse_content_coding(std::string_view value, ContentCoding& coding) noexcept {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty() || equals_ignoring_case(value, "identity")) coding = ContentCoding::identity;
  else if (equals_ignoring_case(value, "gzip") || equals_ignoring_case(value, "x-gzip")) coding = ContentCoding::gzip;
  else if (equals_ignoring_case(value, "deflate")) coding = ContentCoding::deflate;
  else return false;
  return true;
}

struct BodyDecoder::Inflater {
  z_stream z{};
  bool ended = false;  // the compressed stream is complete

  explicit Inflater(ContentCoding coding) {
    // gzip: its header (16 + 15); deflate: zlib's header, or gzip's from clients that mix them up
    // (32 + 15 detects which).
    const int window_bits = coding == ContentCoding::gzip ? 16 + MAX_WBITS : 32 + MAX_WBITS;
    if (inflateInit2(&z, window_bits) != Z_OK) throw std::bad_alloc();
  }
  ~Inflater() { inflateEnd(&z); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
};

BodyDecoder::BodyDecoder(ContentCoding coding, std::size_t keep_limit, std::size_t max_bytes)
    : keep_limit_(keep_limit), max_bytes_(max_bytes) {
  if (coding != ContentCoding::identity) inflater_ = std::make_unique<Inflater>(coding);
}

BodyDecoder::~BodyDecoder() = default;
BodyDecoder::BodyDecoder(BodyDecoder&&) noexcept = default;
BodyDecoder& BodyDecoder::operator=(BodyDecoder&&) noexcept = default;

void BodyDecoder::keep(const char* data, std::size_t n) {
  decoded_ += n;
  if (decoded_ > max_bytes_) {
    state_ = State::over_max;
    std::string().swap(kept_);
    return;
  }
  if (decoded_ > keep_limit_) {
    if (!kept_.empty()) std::string().swap(kept_);
    return;
  }
  kept_.append(data, n);
}

void BodyDecoder::expect(std::uint64_t bytes) {
  if (!inflater_ && bytes <= keep_limit_) kept_.reserve(static_cast<std::size_t>(bytes));
}

BodyDecoder::State BodyDecoder::feed(const char* data, std::size_t n) {
  if (state_ != State::reading || n == 0) return state_;
  if (!inflater_) {
    keep(data, n);
    return state_;
  }
  Inflater& in = *inflater_;
  if (in.ended) return state_ = State::malformed;  // bytes after the end of the compressed stream
  in.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  in.z.avail_in = static_cast<uInt>(n);
  std::array<char, 16 * 1024> out;
  while (in.z.avail_in > 0 && state_ == State::reading) {
    in.z.next_out = reinterpret_cast<Bytef*>(out.data());
    in.z.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&in.z, Z_NO_FLUSH);
    keep(out.data(), out.size() - in.z.avail_out);
    if (rc == Z_STREAM_END) {
      in.ended = true;
      if (in.z.avail_in > 0 && state_ == State::reading) state_ = State::malformed;
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) state_ = State::malformed;
    else if (rc == Z_BUF_ERROR && in.z.avail_out != 0) break;  // no progress possible: needs more input
  }
  return state_;
}

BodyDecoder::State BodyDecoder::finish() {
  if (state_ == State::reading && inflater_ && !inflater_->ended) state_ = State::malformed;
  return state_;
}

}  // namespace kiln::service::http
