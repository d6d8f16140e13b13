// Device libraries in kilnd, over loopback HTTP with the real NVRTC and nvJitLink and no GPU: the
// device_libraries settings and their errors, GET /v1/libraries per tenant, a registration that
// links libraries (prebuilt LTO-IR and source), link errors as diagnostics, cache hits, and keys
// that follow the library's content.
#include <fstream>
#include <regex>

#include "jit/link_kernels.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/service/requests.hpp"
#include "support/child.hpp"
#include "support/http_fixture.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace kiln::jit::test_kernels;
namespace fs = std::filesystem;

void write(const fs::path& file, std::string_view text) { std::ofstream(file, std::ios::binary) << text; }

std::string ltoir_of(const char* source, int arch) {
  jit::CompileResult r = jit::compile(program_of("lib.cu", source), jit::Target::for_arch(arch, jit::ImageKind::ltoir));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().what());
  return r.ok() ? std::string(r.value().image()) : std::string();
}

class Libraries : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    write(dir_.path() / "scale_add.cu", kLibrarySource);
    write(dir_.path() / "scale_add.cuh", kLibraryHeader);
    write(dir_.path() / "scale_add.ltoir", ltoir_of(kLibrarySource, 90));
    service::DeviceLibraryConfig source;
    source.source = dir_.path() / "scale_add.cu";
    source.headers["scale_add.cuh"] = dir_.path() / "scale_add.cuh";
    service::DeviceLibraryConfig prebuilt;
    prebuilt.ltoir = dir_.path() / "scale_add.ltoir";  // its architecture read from the file
    prebuilt.headers["scale_add.cuh"] = dir_.path() / "scale_add.cuh";
    service::DeviceLibraryConfig alice_only = source;
    alice_only.tenants = std::vector<std::string>{"alice"};
    config_.device_libraries = {{"scale_add", source}, {"scale_add_prebuilt", prebuilt}, {"alice_math", alice_only}};
  }

  json caller(const char* source = kCallerSource, json libraries = {"scale_add"}) {
    return {{"name", "caller.cu"}, {"source", source}, {"libraries", std::move(libraries)}};
  }
};

TEST_F(Libraries, AKernelLinkedWithASourceLibraryRegistersAsACubin) {
  start();
  auto r = register_kernel(caller());
  ASSERT_EQ(r->status, 201) << r->body;
  const json body = body_of(r);
  ASSERT_EQ(body["targets"].size(), 1u);
  EXPECT_EQ(body["targets"][0]["arch"], "sm_90");
  EXPECT_EQ(body["targets"][0]["kind"], "cubin");
  EXPECT_EQ(body["targets"][0]["origin"], "compiled");
  EXPECT_EQ(body["targets"][0]["key"].get<std::string>().size(), 64u);
  EXPECT_EQ(body["libraries"], json::array({"scale_add"}));

  auto info = get("/v1/kernels/" + std::to_string(body["id"].get<std::uint64_t>()));
  ASSERT_EQ(info->status, 200) << info->body;
  EXPECT_EQ(body_of(info)["libraries"], json::array({"scale_add"}));
  EXPECT_EQ(body_of(info)["targets"][0]["kind"], "cubin");

  // The same registration again: the link comes from the memory tier, under the same key.
  auto again = register_kernel(caller());
  ASSERT_EQ(again->status, 201) << again->body;
  EXPECT_EQ(body_of(again)["targets"][0]["origin"], "memory");
  EXPECT_EQ(body_of(again)["targets"][0]["key"], body["targets"][0]["key"]);
  EXPECT_NE(body_of(again)["id"], body["id"]);

  // One nvJitLink run for both; none refused.
  const std::string metrics = get("/metrics", nullptr)->body;
  EXPECT_NE(metrics.find("kiln_links_total{result=\"ok\"} 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kiln_links_total{result=\"rejected\"} 0\n"), std::string::npos) << metrics;
}

TEST_F(Libraries, NvrtcsWarningsOfALinkedKernelAreItsWarnings) {
  start();
  auto r = register_kernel(caller((std::string(kCallerSource) + "__global__ void w() { int unused = 1; }\n").c_str()));
  ASSERT_EQ(r->status, 201) << r->body;
  const json warnings = body_of(r)["warnings"];
  ASSERT_FALSE(warnings.empty()) << r->body;
  EXPECT_EQ(warnings[0]["severity"], "warning");
  EXPECT_EQ(warnings[0]["file"], "caller.cu");
}

TEST_F(Libraries, APrebuiltLibraryLinksToo) {
  start();
  auto r = register_kernel(caller(kCallerSource, {"scale_add_prebuilt"}));
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body_of(r)["targets"][0]["kind"], "cubin");
  EXPECT_EQ(body_of(r)["libraries"], json::array({"scale_add_prebuilt"}));
}

TEST_F(Libraries, AKernelWithoutLibrariesIsUnchanged) {
  start();
  auto r = register_kernel({{"source", "extern \"C\" __global__ void k(int* p) { *p = 1; }"}});
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body_of(r)["libraries"], json::array());
  // Calling the library's function without linking it: the declaration comes from nowhere.
  auto unlinked = register_kernel({{"source", kCallerSource}});
  EXPECT_EQ(unlinked->status, 422) << unlinked->body;
}

TEST_F(Libraries, ASymbolNoLibraryDefinesIsALinkErrorNamingIt) {
  start();
  auto r = register_kernel(caller(kUndefinedCallerSource));
  ASSERT_EQ(r->status, 422) << r->body;
  const json e = body_of(r)["error"];
  EXPECT_EQ(e["code"], "compile_failed");
  EXPECT_EQ(e["stage"], "link");
  EXPECT_EQ(e["target"], "sm_90");
  EXPECT_NE(e["message"].get<std::string>().find("nobody_defines_this"), std::string::npos) << e.dump();
  ASSERT_FALSE(e["link_diagnostics"].empty()) << e.dump();
  EXPECT_EQ(e["link_diagnostics"][0]["problem"], "undefined_symbol");
  EXPECT_EQ(e["link_diagnostics"][0]["symbol"], "nobody_defines_this");
  ASSERT_FALSE(e["diagnostics"].empty());
  EXPECT_EQ(e["diagnostics"][0]["code"], "undefined_symbol");
  EXPECT_NE(e["diagnostics"][0]["severity"].get<std::string>().find("error"), std::string::npos) << e.dump();
  EXPECT_FALSE(e["log"].get<std::string>().empty()) << "nvJitLink's own log";
}

TEST_F(Libraries, TwoLibrariesDefiningOneSymbolIsALinkErrorNamingBoth) {
  start();
  auto r = register_kernel(caller(kCallerSource, {"scale_add", "scale_add_prebuilt"}));
  ASSERT_EQ(r->status, 422) << r->body;
  const json e = body_of(r)["error"];
  EXPECT_EQ(e["stage"], "link");
  ASSERT_FALSE(e["link_diagnostics"].empty()) << e.dump();
  EXPECT_EQ(e["link_diagnostics"][0]["problem"], "duplicate_symbol") << e.dump();
  EXPECT_EQ(e["link_diagnostics"][0]["symbol"], "scale_add") << e.dump();
  EXPECT_EQ(e["link_diagnostics"][0]["inputs"].size(), 2u) << e.dump();
}

TEST_F(Libraries, AnUnknownLibraryIs404NamingTheField) {
  start();
  auto r = register_kernel(caller(kCallerSource, {"scale_add", "no_such_lib"}));
  ASSERT_EQ(r->status, 404) << r->body;
  const json e = body_of(r)["error"];
  EXPECT_EQ(e["code"], "not_found");
  EXPECT_EQ(e["field"], "libraries[1]");
  EXPECT_NE(e["message"].get<std::string>().find("'no_such_lib' not found"), std::string::npos) << e.dump();
}

TEST_F(Libraries, MalformedLibraryListsAre400) {
  start();
  for (const auto& [libraries, field] : {std::pair{json("scale_add"), "libraries"}, std::pair{json({1}), "libraries[0]"},
                                         std::pair{json({""}), "libraries[0]"},
                                         std::pair{json({"scale_add", "scale_add"}), "libraries[1]"}}) {
    auto r = register_kernel(caller(kCallerSource, libraries));
    ASSERT_EQ(r->status, 400) << libraries.dump() << ": " << r->body;
    EXPECT_EQ(body_of(r)["error"]["field"], field) << r->body;
  }
}

TEST_F(Libraries, ATenantSeesAndLinksOnlyTheLibrariesItMay) {
  start();
  auto bob = register_kernel(caller(kCallerSource, {"alice_math"}), kBobToken);
  auto unknown = register_kernel(caller(kCallerSource, {"bob_math"}), kBobToken);
  ASSERT_EQ(bob->status, 404) << bob->body;
  // Another tenant's library reads exactly like one that does not exist.
  std::string said = body_of(bob)["error"]["message"];
  std::string unknown_said = body_of(unknown)["error"]["message"];
  EXPECT_EQ(std::regex_replace(said, std::regex("alice_math"), "X"), std::regex_replace(unknown_said, std::regex("bob_math"), "X"));
  auto alice = register_kernel(caller(kCallerSource, {"alice_math"}), kAliceToken);
  EXPECT_EQ(alice->status, 201) << alice->body;

  auto names = [&](const char* token) {
    auto r = get("/v1/libraries", token);
    EXPECT_EQ(r->status, 200) << r->body;
    std::vector<std::string> out;
    const json listed = body_of(r);
    for (const json& l : listed["libraries"]) out.push_back(l["name"]);
    return out;
  };
  EXPECT_EQ(names(kAliceToken), (std::vector<std::string>{"alice_math", "scale_add", "scale_add_prebuilt"}));
  EXPECT_EQ(names(kBobToken), (std::vector<std::string>{"scale_add", "scale_add_prebuilt"}));
  EXPECT_EQ(get("/v1/libraries", nullptr)->status, 401);
}

TEST_F(Libraries, TheListSaysWhatEachLibraryIs) {
  start();
  const json list = body_of(get("/v1/libraries"))["libraries"];
  ASSERT_EQ(list.size(), 3u) << list.dump();
  const json& source = list[1];
  EXPECT_EQ(source["name"], "scale_add");
  EXPECT_TRUE(source["prebuilt"].is_null());
  EXPECT_EQ(source["source"]["bytes"], std::string(kLibrarySource).size());
  EXPECT_EQ(source["headers"], json::array({"scale_add.cuh"}));
  const json& prebuilt = list[2];
  EXPECT_EQ(prebuilt["prebuilt"]["arch"], "sm_90");
  EXPECT_EQ(prebuilt["prebuilt"]["bytes"], fs::file_size(dir_.path() / "scale_add.ltoir"));
  EXPECT_TRUE(prebuilt["source"].is_null());
}

TEST_F(Libraries, TheKeyFollowsTheLibrarysContentAcrossRestarts) {
  start();
  const json first = body_of(register_kernel(caller()));
  const std::string key = first["targets"][0]["key"];
  TearDown();

  // The same files in a new server: the link is found on disk under the same key.
  start();
  const json same = body_of(register_kernel(caller()));
  EXPECT_EQ(same["targets"][0]["key"], key);
  EXPECT_EQ(same["targets"][0]["origin"], "disk");
  TearDown();

  // The library's source changed: another link, another key.
  write(dir_.path() / "scale_add.cu", kSecondDefinitionSource);
  start();
  const json changed = body_of(register_kernel(caller()));
  ASSERT_EQ(changed["targets"].size(), 1u) << changed.dump();
  EXPECT_NE(changed["targets"][0]["key"], key);
  EXPECT_EQ(changed["targets"][0]["origin"], "compiled");
}

TEST_F(Libraries, APrebuiltLibraryForAnotherArchitectureIsRefusedAt400) {
  write(dir_.path() / "sm80.ltoir", ltoir_of(kLibrarySource, 80));
  service::DeviceLibraryConfig sm80;
  sm80.ltoir = dir_.path() / "sm80.ltoir";
  config_.device_libraries["sm80_only"] = sm80;
  start();
  auto r = register_kernel(caller(kCallerSource, {"sm80_only"}));
  ASSERT_EQ(r->status, 400) << r->body;
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("LTO-IR for sm_80"), std::string::npos) << r->body;
  const json listed = body_of(get("/v1/libraries"));
  ASSERT_EQ(listed["libraries"][3]["name"], "sm80_only") << listed.dump();
  EXPECT_EQ(listed["libraries"][3]["prebuilt"]["arch"], "sm_80");
}

// ---------------------------------------------------------------- settings

std::string start_error(const service::ServiceConfig& config) {
  service::NoGpuBackend backend("no GPU");
  try {
    service::Server server(config, service::TokenStore::parse(std::string("alice ") + kAliceToken + "\n", "t"), backend);
    return "";
  } catch (const Error& e) {
    EXPECT_TRUE(e.is(Errc::invalid_argument)) << e.what();
    return e.what();
  }
}

TEST_F(Libraries, FilesAreCheckedAtStart) {
  service::ServiceConfig config = config_;
  config.device_libraries["broken"].source = dir_.path() / "missing.cu";
  std::string said = start_error(config);
  EXPECT_NE(said.find("device_libraries.broken.source"), std::string::npos) << said;
  EXPECT_NE(said.find("missing.cu"), std::string::npos) << said;

  config = config_;
  config.device_libraries["broken"].ltoir = dir_.path() / "scale_add.cu";  // source, not LTO-IR
  said = start_error(config);
  EXPECT_NE(said.find("device_libraries.broken.ltoir"), std::string::npos) << said;
  EXPECT_NE(said.find("is not LTO-IR"), std::string::npos) << said;

  config = config_;
  config.device_libraries["broken"].source = dir_.path() / "scale_add.cu";
  config.device_libraries["broken"].headers["h.cuh"] = dir_.path() / "nope.cuh";
  said = start_error(config);
  EXPECT_NE(said.find("device_libraries.broken.headers.h.cuh"), std::string::npos) << said;
}

TEST(LibrarySettings, TheConfigFileNamesTheKeyAtFault) {
  auto error_of = [](const json& settings) -> std::string {
    service::ServiceConfig c;
    try {
      service::apply_config_json(c, settings.dump(), "kilnd.json");
      return "";
    } catch (const Error& e) {
      return e.what();
    }
  };
  EXPECT_NE(error_of({{"device_libraries", {{"m", {{"source", "m.cu"}, {"bogus", 1}}}}}}).find("device_libraries.m.bogus"),
            std::string::npos);
  EXPECT_NE(error_of({{"device_libraries", {{"m", json::object()}}}}).find("names neither"), std::string::npos);
  EXPECT_NE(error_of({{"device_libraries", {{"bad name", {{"source", "m.cu"}}}}}}).find("1-64"), std::string::npos);
  EXPECT_NE(error_of({{"device_libraries", {{"m", {{"source", "m.cu"}, {"arch", 90}}}}}}).find("device_libraries.m.arch"),
            std::string::npos);
  EXPECT_NE(error_of({{"device_libraries", {{"m", {{"source", "m.cu"}, {"options", {{"std", 17}}}}}}}})
                .find("device_libraries.m.options.std"),
            std::string::npos);
  EXPECT_NE(error_of({{"device_libraries", {{"m", {{"source", "m.cu"}, {"tenants", "alice"}}}}}}).find("device_libraries.m.tenants"),
            std::string::npos);

  service::ServiceConfig c;
  service::apply_config_json(c,
                             json{{"device_libraries",
                                   {{"m", {{"ltoir", "m.ltoir"}, {"arch", 80}, {"source", "m.cu"}, {"options", {{"std", "c++17"}, {"fast_math", true}}},
                                           {"headers", {{"m.cuh", "include/m.cuh"}}}, {"tenants", {"alice"}}}}}}}
                                 .dump(),
                             "kilnd.json");
  const service::DeviceLibraryConfig& m = c.device_libraries.at("m");
  EXPECT_EQ(m.ltoir, "m.ltoir");
  EXPECT_EQ(m.arch, 80);
  EXPECT_EQ(m.source, "m.cu");
  EXPECT_EQ(m.options.standard, "c++17");
  EXPECT_TRUE(m.options.fast_math);
  EXPECT_EQ(m.headers.at("m.cuh"), "include/m.cuh");
  EXPECT_EQ(m.tenants, std::vector<std::string>{"alice"});
}

// ---------------------------------------------------------------- kilnd without nvJitLink

TEST(KilndLibraries, WithoutNvJitLinkALibraryKernelIs503NamingIt) {
  TempDir dir;
  write(dir.path() / "scale_add.cu", kLibrarySource);
  write(dir.path() / "tokens", std::string("alice ") + kAliceToken + "\n");
  fs::permissions(dir.path() / "tokens", fs::perms::owner_read | fs::perms::owner_write);
  write(dir.path() / "kilnd.json",
        json{{"device_libraries", {{"scale_add", {{"source", (dir.path() / "scale_add.cu").string()}}}}}}.dump());
  Child child({"/usr/bin/env", "KILN_NVJITLINK_PATH=" + (dir.path() / "no-nvjitlink.so").string(), KILND_PATH, "--port", "0",
               "--config", (dir.path() / "kilnd.json").string(), "--tokens", (dir.path() / "tokens").string(),
               "--cache-dir", (dir.path() / "cache").string()});
  std::string transcript;
  const std::string port = child.wait_for(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), transcript);
  ASSERT_FALSE(port.empty()) << transcript;
  httplib::Client client("127.0.0.1", std::stoi(port));
  client.set_read_timeout(std::chrono::seconds(120));
  const httplib::Headers auth{{"Authorization", std::string("Bearer ") + kAliceToken}};
  const std::string decl = "extern \"C\" __device__ float scale_add(float, float, float);\n";
  auto r = client.Post("/v1/kernels", auth,
                       json{{"source", decl + "extern \"C\" __global__ void k(float* y) { y[0] = scale_add(1, y[0], 2); }"},
                            {"libraries", {"scale_add"}}}
                           .dump(),
                       "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  const json e = json::parse(r->body)["error"];
  EXPECT_EQ(e["code"], "library_unavailable") << e.dump();
  EXPECT_EQ(e["name"], "KILN_ERROR_NVJITLINK_NOT_FOUND") << e.dump();
  EXPECT_NE(e["message"].get<std::string>().find("KILN_NVJITLINK_PATH"), std::string::npos) << e.dump();
  // Kernels without libraries do not need nvJitLink.
  auto plain = client.Post("/v1/kernels", auth, R"({"source": "__global__ void k() {}"})", "application/json");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 201) << plain->body;
  EXPECT_EQ(child.terminate(), 0);
}

TEST(KilndLibraries, ABadLibraryStopsStartUpNamingTheSetting) {
  TempDir dir;
  write(dir.path() / "kilnd.json", json{{"device_libraries", {{"m", {{"ltoir", (dir.path() / "m.ltoir").string()}}}}}}.dump());
  Child child({KILND_PATH, "--port", "0", "--config", (dir.path() / "kilnd.json").string()}, /*with_stderr=*/true);
  std::string transcript;
  while (auto line = child.line()) transcript += *line + "\n";
  EXPECT_NE(transcript.find("device_libraries.m.ltoir"), std::string::npos) << transcript;
  EXPECT_NE(transcript.find("m.ltoir' is not a readable file"), std::string::npos) << transcript;
  EXPECT_EQ(child.terminate(), 1) << transcript;
}

}  // namespace
}  // namespace kiln::testing
