// JSON request bodies parsed under limits that hold while parsing: a first pass (nlohmann's SAX
// interface, which builds nothing) checks the syntax, the nesting depth, the number of values and
// duplicate keys, and only a body that passes becomes a DOM. A DOM node costs ~50-100 bytes, so
// without limits a 4 MiB body of "[" or of "1," costs hundreds of MB; with them, a body costs at most
// max_values nodes beyond its own text.
//
// Built twice: into kiln_service and alone into the fuzz target (by clang), so it uses nothing of
// kiln's compiled code.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kiln/service/requests.hpp"

namespace kiln::service::detail {

// Parses `body` into `out`; on refusal returns why, with the JSON path of the offending value
// ("arguments[2].value", "" for the whole body) and a valid UTF-8 message: malformed JSON (the
// parser's message, cut and with raw bytes escaped), a number that overflows a double ("1e999"),
// nesting deeper than limits.max_json_depth, more than limits.max_json_values values (object
// keys count as values), a key repeated within one object.
std::optional<RequestError> parse_bounded_json(std::string_view body, const RequestLimits& limits, nlohmann::json& out);

}  // namespace kiln::service::detail
