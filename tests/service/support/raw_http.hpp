// A plain TCP connection to a server on loopback, for requests an HTTP client library would not
// send (duplicate Content-Length, invalid UTF-8 in the path, a body on GET) and for seeing what
// the server does with the connection afterwards. Reads one answer framed by its Content-Length.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::testing {

struct RawResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
  std::string header(std::string_view name) const;  // "" when absent; case-insensitive
};

class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // False when the server closed or reset the connection while it was written.
  bool send(std::string_view bytes);
  // One answer, or nullopt when the connection ends first or `timeout` passes (a failure bound).
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // True once the server has closed the connection (a read sees its end) within `timeout`;
  // false when data arrives or the time passes.
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  int read_some(std::chrono::milliseconds timeout);  // bytes appended to pending_; 0 at end; -1 timeout/error
  int fd_ = -1;
  std::string pending_;
};

// One request on a new connection and its answer.
std::optional<RawResponse> raw_exchange(int port, std::string_view request);

// What nlohmann's strict parser and dump accept: valid UTF-8 JSON (checked without kiln's code).
bool is_utf8_json(const std::string& body);

}  // namespace kiln::testing
