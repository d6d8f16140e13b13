// A small XML well-formedness checker for the SVG tests (the GPU machine has no xmllint): one
// root element, every tag closed in order, attributes quoted and unique, only the five predefined
// entities or character references, no '<' or stray '&' in text.
#pragma once

#include <string>

namespace kiln::testing {

// Empty when `xml` is well-formed; otherwise the first problem and its offset.
std::string xml_problem(const std::string& xml);

}  // namespace kiln::testing
