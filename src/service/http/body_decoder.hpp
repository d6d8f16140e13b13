// A request body as it arrives (after chunked decoding), undone of its Content-Encoding (identity,
// gzip or deflate) and held under two limits: bytes past `keep_limit` are counted and dropped, so
// the connection stays in step and the client reads a 413; past `max_bytes` (decoded) reading must
// stop. Limits hold on the decoded bytes: a small gzip body that inflates past them is refused
// without being held.
//
// Thread safety: a plain value used by one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kiln::service::http {

enum class ContentCoding { identity, gzip, deflate };

// The coding a Content-Encoding value names, or false for one kilnd does not decode ("br", a list).
bool parse_content_coding(std::string_view value, ContentCoding& coding) noexcept;

class BodyDecoder {
 public:
  enum class State { reading, over_max, malformed };

  BodyDecoder(ContentCoding coding, std::size_t keep_limit, std::size_t max_bytes);
  ~BodyDecoder();
  BodyDecoder(BodyDecoder&&) noexcept;
  BodyDecoder& operator=(BodyDecoder&&) noexcept;

  // The body's announced size (Content-Length): room for it is made at once, up to the keep limit,
  // so a large upload is not copied again each time the buffer doubles. Compressed bodies grow as
  // they inflate.
  void expect(std::uint64_t bytes);
  // Takes the next bytes of the body as sent. Once the state is not `reading`, stop feeding.
  State feed(const char* data, std::size_t n);
  // The body has ended: malformed when compressed data stopped mid-stream.
  State finish();

  std::uint64_t decoded_bytes() const noexcept { return decoded_; }
  bool over_keep_limit() const noexcept { return decoded_ > keep_limit_; }
  // The body (empty once over the keep limit).
  std::string take() { return std::move(kept_); }

 private:
  void keep(const char* data, std::size_t n);
  struct Inflater;

  std::size_t keep_limit_, max_bytes_;
  std::uint64_t decoded_ = 0;
  std::string kept_;
  std::unique_ptr<Inflater> inflater_;  // null for identity
  State state_ = State::reading;
};

}  // namespace kiln::service::http
