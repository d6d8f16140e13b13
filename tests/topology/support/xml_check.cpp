#include "support/xml_check.hpp"

#include <cctype>
#include <set>
#include <vector>

namespace kiln::testing {
namespace {

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// Checks an entity reference starting at s[i] == '&'; advances i past ';'.
bool entity(const std::string& s, std::size_t& i) {
  const auto end = s.find(';', i);
  if (end == std::string::npos || end - i > 10) return false;
  const std::string name = s.substr(i + 1, end - i - 1);
  static const std::set<std::string> known{"amp", "lt", "gt", "quot", "apos"};
  bool ok = known.count(name) > 0;
  if (!ok && name.size() > 1 && name[0] == '#') {
    ok = true;
    const bool hex = name[1] == 'x';
    for (std::size_t k = hex ? 2 : 1; k < name.size(); ++k)
      ok = ok && (hex ? std::isxdigit(static_cast<unsigned char>(name[k])) : std::isdigit(static_cast<unsigned char>(name[k])));
  }
  i = end;
  return ok;
}

}  // namespace

std::string xml_problem(const std::string& s) {
  std::vector<std::string> open;
  bool root_seen = false;
  auto at = [](std::size_t i) { return " at offset " + std::to_string(i); };
  std::size_t i = 0;
  if (s.rfind("<?xml", 0) == 0) {
    i = s.find("?>");
    if (i == std::string::npos) return "unterminated XML declaration";
    i += 2;
  }
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '&') {
      if (!entity(s, i)) return "bad entity reference" + at(i);
      continue;
    }
    if (c == '>') return "'>' outside a tag" + at(i);  // legal XML, but a sign of broken markup here
    if (c != '<') {
      if (open.empty() && !std::isspace(static_cast<unsigned char>(c))) return "text outside the root element" + at(i);
      continue;
    }
    if (s.compare(i, 4, "<!--") == 0) {
      const auto end = s.find("-->", i);
      if (end == std::string::npos) return "unterminated comment" + at(i);
      i = end + 2;
      continue;
    }
    const bool closing = i + 1 < s.size() && s[i + 1] == '/';
    std::size_t j = i + (closing ? 2 : 1);
    const std::size_t name_start = j;
    while (j < s.size() && name_char(s[j])) ++j;
    const std::string name = s.substr(name_start, j - name_start);
    if (name.empty()) return "tag without a name" + at(i);
    if (closing) {
      while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      if (j >= s.size() || s[j] != '>') return "malformed closing tag </" + name + at(i);
      if (open.empty() || open.back() != name)
        return "</" + name + "> closes " + (open.empty() ? std::string("nothing") : "<" + open.back() + ">") + at(i);
      open.pop_back();
      i = j;
      continue;
    }
    if (open.empty() && root_seen) return "a second root element <" + name + ">" + at(i);
    std::set<std::string> attributes;
    while (true) {
      const std::size_t before = j;
      while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      if (j >= s.size()) return "unterminated tag <" + name + at(i);
      if (s[j] == '>' || s.compare(j, 2, "/>") == 0) break;
      if (j == before) return "attributes of <" + name + "> are not separated by spaces" + at(j);
      const std::size_t attr_start = j;
      while (j < s.size() && name_char(s[j])) ++j;
      const std::string attr = s.substr(attr_start, j - attr_start);
      if (attr.empty() || j >= s.size() || s[j] != '=') return "malformed attribute in <" + name + ">" + at(j);
      if (!attributes.insert(attr).second) return "attribute " + attr + " repeated in <" + name + ">" + at(j);
      ++j;
      if (j >= s.size() || (s[j] != '"' && s[j] != '\'')) return "unquoted attribute " + attr + at(j);
      const char quote = s[j];
      for (++j; j < s.size() && s[j] != quote; ++j) {
        if (s[j] == '<') return "'<' in attribute " + attr + at(j);
        if (s[j] == '&' && !entity(s, j)) return "bad entity in attribute " + attr + at(j);
      }
      if (j >= s.size()) return "unterminated attribute " + attr + at(attr_start);
      ++j;
    }
    if (s[j] == '/') {
      ++j;  // self-closing
      if (open.empty()) root_seen = true;
    } else {
      open.push_back(name);
      root_seen = true;
    }
    i = j;
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (!root_seen) return "no root element";
  return {};
}

}  // namespace kiln::testing
