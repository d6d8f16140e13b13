// Built twice: into kiln_service, and alone into the fuzz target (by clang), so this file uses
// nothing of kiln but plain values.
#include "detail/bounded_json.hpp"

#include <string>
#include <unordered_set>
#include <vector>

#include "detail/error_body.hpp"

namespace kiln::service::detail {

namespace {

using nlohmann::json;

// The longest parser message a refusal quotes: nlohmann's "last read: '...'" repeats the token,
// which may be the whole body.
constexpr std::size_t kMaxParserMessage = 240;

class ShapeCheck final : public nlohmann::json_sax<json> {
 public:
  explicit ShapeCheck(const RequestLimits& limits) : limits_(limits) {}

  std::optional<RequestError> refusal;

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }

  bool start_object(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }

  bool key(string_t& key) override {
    Frame& f = frames_.back();
    if (!count()) return false;
    if (!f.keys.insert(key).second) {
      f.key = key;
      return refuse(path(), "duplicate key (each key may appear once in an object)");
    }
    f.key = std::move(key);
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    // nlohmann reports a number that overflows a double (1e999) as out_of_range 406.
    if (e.id == 406) return refuse(path(/*pending=*/true), "number out of range (it overflows a double)");
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ...": the part after the tag.
    if (const std::size_t tag = what.find("] "); what.rfind("[json.exception.", 0) == 0 && tag != std::string::npos)
      what.erase(0, tag + 2);
    return refuse("", "malformed JSON at byte " + std::to_string(position) + ": " + printable(what, kMaxParserMessage));
  }

 private:
  struct Frame {
    bool object = false;
    std::size_t elements = 0;              // arrays: elements begun so far
    std::string key;                       // objects: the last key read
    std::unordered_set<std::string> keys;  // objects: every key read
  };

  bool refuse(std::string field, std::string message) {
    if (!refusal) refusal = RequestError{std::move(field), std::move(message)};
    return false;
  }

  bool count() {
    if (++values_ > limits_.max_json_values)
      return refuse(path(), "the body has more than " + std::to_string(limits_.max_json_values) +
                                " JSON values and keys (max_json_values)");
    return true;
  }

  // A value begins: counted, and (in an array) given its index.
  bool begin_value() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().elements;
    return count();
  }

  bool value() { return begin_value(); }

  bool open(bool object) {
    if (!begin_value()) return false;
    if (frames_.size() >= limits_.max_json_depth)
      return refuse(path(), "nested deeper than " + std::to_string(limits_.max_json_depth) + " levels (max_json_depth)");
    frames_.push_back(Frame{object, 0, {}, {}});
    return true;
  }

  bool close() {
    frames_.pop_back();
    return true;
  }

  // The JSON path of the value being read, as requests.cpp names fields: a.b[2].c. `pending`: the
  // value has not begun yet (the parser refused it), so in an array it is the next element.
  std::string path(bool pending = false) const {
    std::string out;
    for (std::size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (f.object) {
        if (f.keys.empty()) break;
        if (!out.empty()) out += '.';
        out += f.key;
      } else {
        const bool last = i + 1 == frames_.size();
        const std::size_t index = pending && last ? f.elements : f.elements - 1;
        if (!(pending && last) && f.elements == 0) break;
        out += '[';
        out += std::to_string(index);  // appended piecewise: GCC 12 warns (-Wrestrict) on "[" + s + "]"
        out += ']';
      }
    }
    return printable(out, 200);
  }

  const RequestLimits& limits_;
  std::vector<Frame> frames_;
  std::size_t values_ = 0;
};

}  // namespace

std::optional<RequestError> parse_bounded_json(std::string_view body, const RequestLimits& limits, json& out) {
  ShapeCheck check(limits);
  if (!json::sax_parse(body, &check)) {
    if (check.refusal) return check.refusal;
    return RequestError{"", "malformed JSON"};
  }
  // The same parser accepted it; only memory can fail now.
  out = json::parse(body);
  return std::nullopt;
}

}  // namespace kiln::service::detail
