// Issue 11's probes over real loopback HTTP, many through a raw socket because a client library
// would not send them: every malformed request gets a 4xx whose body is valid UTF-8 JSON, nothing
// ends the server, ids beyond 64 bits are 404, framing that a server must not guess at is 400 and
// closes the connection, bodies are read under the limits whatever their transfer or content
// coding, and a hostile JSON body is refused before it costs memory.
#include <zlib.h>

#include <thread>

#include "support/http_fixture.hpp"
#include "support/raw_http.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;

std::string auth_header(const char* token = kAliceToken) { return std::string("Authorization: Bearer ") + token + "\r\n"; }

std::string request(std::string_view method, std::string_view target, std::string_view headers = "",
                    std::string_view body = "", bool length = true) {
  std::string r = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(headers);
  if (length && !body.empty()) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + std::string(body);
}

std::string error_message(const RawResponse& r) {
  const json body = json::parse(r.body, nullptr, false);
  return body.is_discarded() ? std::string() : body["error"].value("message", std::string());
}

class HttpHardening : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    start();
  }
  void expect_still_serving() {
    auto health = get("/healthz", nullptr);
    ASSERT_TRUE(health) << "the server stopped answering";
    EXPECT_EQ(health->status, 200);
  }
};

TEST_F(HttpHardening, InvalidUtf8PathsAre404WithValidUtf8AndTheServerKeepsServing) {
  // Each path decodes to bytes that are not UTF-8: a lone 0xFF, a cut sequence, a surrogate, a
  // code point above U+10FFFF, an overlong '/', and one in an id's place. The 404 quotes the path
  // (before: json::dump() threw type_error.316 in the error handler and the process ended).
  for (const char* path : {"/%ff", "/%c3", "/v1/%ed%a0%80", "/%f4%90%80%80", "/%c0%af", "/v1/kernels/%ff", "/a%00b"}) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.send(request("GET", path)));
    auto r = c.read_response();
    ASSERT_TRUE(r) << path << ": no answer";
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_TRUE(is_utf8_json(r->body)) << path << " -> " << r->body;
    // The same connection serves the next request.
    ASSERT_TRUE(c.send(request("GET", "/healthz")));
    auto next = c.read_response();
    ASSERT_TRUE(next) << path << ": the connection was not kept";
    EXPECT_EQ(next->status, 200);
  }
  auto r = raw_exchange(server_->port(), request("GET", "/%ff%fe"));
  ASSERT_TRUE(r);
  EXPECT_NE(error_message(*r).find("/\\xFF\\xFE"), std::string::npos) << "invalid bytes stay visible: " << r->body;
  expect_still_serving();
}

// Requests that answered 500 (an exception from json::dump(), std::stoull) or nothing: each is a
// 4xx now, with a valid UTF-8 JSON body naming what is wrong.
TEST_F(HttpHardening, MalformedRequestsAre4xxWithValidUtf8Bodies) {
  const std::string alice = auth_header();
  // describe() cut a quoted value at byte 57: after "x, that splits an 'é'.
  const std::string cut_mid_character = "{\"bytes\": \"x" + [] {
    std::string s;
    for (int i = 0; i < 40; ++i) s += "\xc3\xa9";
    return s;
  }() + "\"}";
  struct Case {
    std::string name, request;
    int status;
    std::string text;  // in the message, or in the body
  };
  const Case cases[] = {
      {"raw 0xFF in a JSON string", request("POST", "/v1/kernels", alice, "{\"source\": \"\xff\"}"), 400, "malformed JSON"},
      {"raw 0xFF as a value", request("POST", "/v1/launches", alice, "{\"kernel\": \xff}"), 400, "malformed JSON"},
      {"raw bytes in a key", request("POST", "/v1/buffers", alice, "{\"by\xfe\xfftes\": 1}"), 400, "malformed JSON"},
      {"a message cut mid-character", request("POST", "/v1/buffers", alice, cut_mid_character), 400, "bytes"},
      {"a number beyond a double", request("POST", "/v1/buffers", alice, R"({"bytes": 1e999})"), 400, "out of range"},
      {"an integer beyond 64 bits", request("POST", "/v1/buffers", alice, R"({"bytes": 99999999999999999999999})"), 400,
       "must be at most 18446744073709551615"},
      {"a float for an integer", request("POST", "/v1/buffers", alice, R"({"bytes": 1.5})"), 400, "non-negative integer"},
      {"a 20-digit kernel id", request("POST", "/v1/launches", alice, R"({"kernel": 99999999999999999999, "function": "k"})"),
       400, "kernel"},
      {"a query with raw bytes", request("GET", "/v1/jobs/1?wait_ms=%ff%fe", alice), 400, "wait_ms"},
      {"a 20-digit job id", request("GET", "/v1/jobs/99999999999999999999", alice), 404, "job 99999999999999999999 not found"},
      {"a 20-digit kernel id in the path", request("DELETE", "/v1/kernels/18446744073709551616", alice), 404, "not found"},
      {"a 60-digit buffer id", request("GET", "/v1/buffers/" + std::string(60, '9') + "/data", alice), 404, "not found"},
      {"a token with raw bytes", request("GET", "/v1/jobs/1", "Authorization: Bearer \xff\xfe%ff\r\n"), 401, "unknown bearer token"},
      {"duplicate keys", request("POST", "/v1/buffers", alice, R"({"bytes": 1, "bytes": 2})"), 400, "duplicate key"},
      {"deep nesting", request("POST", "/v1/kernels", alice, std::string(100, '[') + std::string(100, ']')), 400, "max_json_depth"},
      {"an unknown method on a route", request("PATCH", "/v1/kernels/1", alice), 405, "GET, DELETE"},
      {"an unknown field with raw bytes", request("POST", "/v1/buffers", alice, "{\"bytes\": 1, \"t\\u00e9\": 2}"), 400, "unknown field"},
  };
  for (const Case& c : cases) {
    auto r = raw_exchange(server_->port(), c.request);
    ASSERT_TRUE(r) << c.name << ": no answer";
    EXPECT_EQ(r->status, c.status) << c.name << " -> " << r->body;
    EXPECT_TRUE(is_utf8_json(r->body)) << c.name << " -> " << r->body;
    EXPECT_NE(r->body.find(c.text), std::string::npos) << c.name << " -> " << r->body;
  }
  expect_still_serving();
}

TEST_F(HttpHardening, IdsBeyondSixtyFourBitsAre404AfterAuthentication) {
  const std::string paths[] = {"/v1/kernels/18446744073709551616", "/v1/buffers/99999999999999999999",
                               "/v1/buffers/99999999999999999999/data", "/v1/jobs/" + std::string(300, '7'),
                               "/v1/kernels/" + std::string(4000, '0') + "1"};
  for (const std::string& path : paths) {
    auto r = get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path << " -> " << r->body;
    EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("not found"), std::string::npos) << r->body;
    auto anonymous = get(path, nullptr);
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->status, 401) << path;
  }
  // The largest id is an id like any other.
  auto largest = get("/v1/kernels/18446744073709551615");
  ASSERT_TRUE(largest);
  EXPECT_EQ(largest->status, 404);
  EXPECT_NE(largest->body.find("kernel 18446744073709551615 not found"), std::string::npos) << largest->body;
}

// cpp-httplib reads a body by the first Content-Length it finds and lets the rest through; a
// proxy in front may read another: the request is refused, and the connection closed because its
// body cannot be told from the next request.
TEST_F(HttpHardening, AmbiguousFramingIs400AndClosesTheConnection) {
  const std::string alice = auth_header();
  const std::string body = R"({"bytes": 1})";
  struct Case {
    std::string name, headers;
    int status;
    std::string text;
  };
  const Case cases[] = {
      {"two Content-Length", "Content-Length: 12\r\nContent-Length: 30\r\n", 400, "Content-Length"},
      {"two equal Content-Length", "Content-Length: 12\r\nContent-Length: 12\r\n", 400, "Content-Length"},
      {"Content-Length not a number", "Content-Length: 12abc\r\n", 400, "Content-Length"},
      {"Content-Length beyond 64 bits", "Content-Length: 99999999999999999999999\r\n", 400, "Content-Length"},
      {"Content-Length and chunked", "Content-Length: 12\r\nTransfer-Encoding: chunked\r\n", 400, "both"},
      {"a transfer coding other than chunked", "Transfer-Encoding: gzip, chunked\r\n", 400, "chunked"},
      {"whitespace before the colon", "Content-Length : 12\r\n", 400, "token"},
      {"a multipart body", "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 12\r\n", 415, "multipart"},
  };
  for (const Case& c : cases) {
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send(request("POST", "/v1/buffers", alice + c.headers, body, /*length=*/false)));
    auto r = conn.read_response();
    ASSERT_TRUE(r) << c.name << ": no answer";
    EXPECT_EQ(r->status, c.status) << c.name << " -> " << r->body;
    EXPECT_TRUE(is_utf8_json(r->body)) << c.name << " -> " << r->body;
    EXPECT_NE(error_message(*r).find(c.text), std::string::npos) << c.name << " -> " << r->body;
    EXPECT_TRUE(conn.closed_by_server()) << c.name << ": the connection stayed open";
  }
  // A body on GET: cpp-httplib would not read it, and take it for the next request.
  RawConnection conn(server_->port());
  ASSERT_TRUE(conn.send(request("GET", "/v1/jobs/1", alice, "GET /healthz HTTP/1.1\r\n\r\n")));
  auto r = conn.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_TRUE(conn.closed_by_server()) << "the body would have been read as a second request";
  expect_still_serving();
}

// A request without Content-Length and Transfer-Encoding has no body (RFC 9112 6.3): a DELETE as
// curl sends it is answered at once, and the connection serves the next request.
TEST_F(HttpHardening, ARequestWithoutLengthHasNoBody) {
  RawConnection conn(server_->port());
  ASSERT_TRUE(conn.send("DELETE /v1/kernels/5 HTTP/1.1\r\nHost: x\r\n" + auth_header() + "\r\n"));
  auto r = conn.read_response(std::chrono::seconds(20));  // a failure bound; the answer is immediate
  ASSERT_TRUE(r) << "no answer: the server waited for a body";
  EXPECT_EQ(r->status, 404) << r->body;
  ASSERT_TRUE(conn.send(request("GET", "/healthz")));
  auto next = conn.read_response();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

// A Range header is ignored (RFC 9110 allows it): cpp-httplib cut every answer to the ranges,
// error bodies included, and built multipart answers of any size from them.
TEST_F(HttpHardening, RangeHeadersAreIgnored) {
  for (const char* range : {"bytes=0-0", "bytes=0-1,0-1,0-1,0-1", "bytes=5-"}) {
    auto r = raw_exchange(server_->port(), request("GET", "/v1/jobs/77", auth_header() + "Range: " + range + "\r\n"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << range;
    EXPECT_TRUE(is_utf8_json(r->body)) << range << " -> " << r->body;
    EXPECT_EQ(r->header("Content-Range"), "") << range;
  }
}

TEST_F(HttpHardening, UnauthenticatedBodiesAreNotRead) {
  RawConnection conn(server_->port());
  // Announces 1 GiB and sends none of it: the 401 comes at once and the connection closes.
  ASSERT_TRUE(conn.send("POST /v1/kernels HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n{"));
  auto r = conn.read_response(std::chrono::seconds(20));
  ASSERT_TRUE(r) << "no answer";
  EXPECT_EQ(r->status, 401) << r->body;
  EXPECT_TRUE(conn.closed_by_server());
}

class HttpBodyLimits : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    config_.max_body_bytes = 64 * 1024;
    config_.max_json_bytes = 8 * 1024;
    start();
  }
};

std::string chunked(std::string_view data, std::size_t chunk = 4096) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < data.size(); i += chunk) {
    const std::string_view piece = data.substr(i, chunk);
    std::string size;
    for (std::size_t n = piece.size(); n > 0; n /= 16) size.insert(size.begin(), kHex[n % 16]);
    out += size + "\r\n" + std::string(piece) + "\r\n";
  }
  return out + "0\r\n\r\n";
}

std::string gzip(std::string_view data) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// cpp-httplib 0.11 checks max_body_bytes only against a Content-Length: a chunked body, or a
// compressed one (it inflates gzip, deflate and br), was read into memory whatever its size.
TEST_F(HttpBodyLimits, ChunkedAndCompressedBodiesAreBounded) {
  const std::string alice = auth_header();
  {
    // Within the limits, a chunked JSON body is read as any other.
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send(request("POST", "/v1/buffers", alice + "Transfer-Encoding: chunked\r\n",
                                  chunked(R"({"bytes": 0})", 3), false)));
    auto r = conn.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_NE(r->body.find("bytes: must be at least 1"), std::string::npos) << r->body;
  }
  {
    // Over max_json_bytes but within max_body_bytes: read to its end and refused; the connection
    // stays in step.
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send(request("POST", "/v1/kernels", alice + "Transfer-Encoding: chunked\r\n",
                                  chunked(std::string(20 * 1024, ' ')), false)));
    auto r = conn.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413) << r->body;
    EXPECT_NE(r->body.find("max_json_bytes"), std::string::npos) << r->body;
    ASSERT_TRUE(conn.send(request("GET", "/healthz")));
    auto next = conn.read_response();
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200);
  }
  {
    // Over max_body_bytes: reading stops there, the answer is 413 and the connection closes.
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send(request("PUT", "/v1/buffers/1/data", alice + "Transfer-Encoding: chunked\r\n", "", false)));
    const std::string piece = "4000\r\n" + std::string(16 * 1024, 'x') + "\r\n";  // one 16 KiB chunk; no last chunk
    for (int i = 0; i < 8 && conn.send(piece); ++i) {
    }
    auto r = conn.read_response();
    ASSERT_TRUE(r) << "no answer";
    EXPECT_EQ(r->status, 413) << r->body;
    EXPECT_NE(r->body.find("max_body_bytes"), std::string::npos) << r->body;
    EXPECT_TRUE(conn.closed_by_server());
  }
  for (const char* encoding : {"gzip", "deflate"}) {
    // 8 MiB of spaces inflate from ~8 KiB; the limit holds on what they inflate to.
    const std::string bomb = gzip(std::string(8 << 20, ' '));
    ASSERT_LT(bomb.size(), 64u * 1024);
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send(request("POST", "/v1/kernels", alice + "Content-Encoding: " + std::string(encoding) + "\r\n", bomb)));
    auto r = conn.read_response();
    ASSERT_TRUE(r) << encoding << ": no answer";
    EXPECT_EQ(r->status, 413) << encoding << " -> " << r->body;
    EXPECT_TRUE(is_utf8_json(r->body)) << r->body;
  }
  auto health = get("/healthz", nullptr);
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

}  // namespace
}  // namespace kiln::testing
