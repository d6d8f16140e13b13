// docs/openapi.json is the API's contract: every route the server registers is documented there,
// and nothing is documented that the server does not serve.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "kiln/service/server.hpp"

namespace kiln::service {
namespace {

TEST(OpenApi, DocumentMatchesTheServersRoutes) {
  std::ifstream in(KILN_OPENAPI_PATH);
  ASSERT_TRUE(in) << "cannot read " << KILN_OPENAPI_PATH;
  const nlohmann::json doc = nlohmann::json::parse(in);
  ASSERT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");

  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, item] : doc["paths"].items())
    for (const auto& [method, operation] : item.items()) {
      if (method == "parameters") continue;
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.emplace(upper, path);
      EXPECT_TRUE(operation.contains("responses")) << upper << " " << path << " documents no responses";
    }
  std::set<std::pair<std::string, std::string>> served;
  for (const Route& r : Server::routes()) served.emplace(std::string(r.method), std::string(r.path));

  for (const auto& route : served)
    EXPECT_TRUE(documented.count(route)) << route.first << " " << route.second << " is served but not in openapi.json";
  for (const auto& route : documented)
    EXPECT_TRUE(served.count(route)) << route.first << " " << route.second << " is in openapi.json but not served";
  EXPECT_EQ(served.size(), Server::routes().size()) << "a route is registered twice";
}

TEST(OpenApi, EveryReferenceResolves) {
  std::ifstream in(KILN_OPENAPI_PATH);
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<std::string> missing;
  auto walk = [&](auto&& self, const nlohmann::json& node) -> void {
    if (node.is_object()) {
      if (auto it = node.find("$ref"); it != node.end()) {
        const std::string ref = it->get<std::string>();
        if (ref.rfind("#/", 0) != 0 || !doc.contains(nlohmann::json::json_pointer(ref.substr(1)))) missing.push_back(ref);
      }
      for (const auto& [k, v] : node.items()) self(self, v);
    } else if (node.is_array()) {
      for (const auto& v : node) self(self, v);
    }
  };
  walk(walk, doc);
  EXPECT_TRUE(missing.empty()) << "unresolved: " << nlohmann::json(missing).dump();
}

}  // namespace
}  // namespace kiln::service
