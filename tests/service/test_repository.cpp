// kilnd's kernel repository over loopback HTTP, with packages built by the real NVRTC (jit::pack)
// and a stand-in GPU (support/fake_gpu.hpp: it records each launch's image and version), as this
// machine has none; test_kilnd_gpu swaps versions under load on the real one. Covered: the modes
// (none, explicit, poll), the version policy, launches by name and name:version with their
// arguments checked against the manifest, refused versions that never replace the one in service,
// half-written folders, rollback, tenants, operators, in-flight launches keeping their version,
// metrics.
#include <fstream>
#include <future>
#include <thread>

#include "kiln/jit/kernel_cache.hpp"
#include "support/fake_gpu.hpp"
#include "support/http_fixture.hpp"
#include "support/packages.hpp"

namespace kiln::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// One cache for the whole binary: every test packs the same few versions.
jit::KernelCache& package_cache() {
  static TempDir dir;
  static jit::KernelCache cache([] {
    jit::KernelCacheOptions o;
    o.disk.directory = dir.path();
    return o;
  }());
  return cache;
}

class Repository : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    repo_ = dir_.path() / "repository";
    staging_ = dir_.path() / "staging";
    fs::create_directories(repo_);
    fs::create_directories(staging_);
    config_.repository.path = repo_;
    config_.repository.operators = {"alice"};
    config_.repository.poll_interval = std::chrono::milliseconds(20);
    gpu_backend_ = &gpu_;
  }

  fs::path pack(std::uint64_t version, std::vector<std::string> targets = {"sm_90"}, bool source = false,
                std::vector<std::string> tenants = {}, const std::string& name = "stamp") {
    return pack_stamp(package_cache(), repo_, name, version, std::move(targets), source, std::move(tenants));
  }
  // Packed beside the repository, for a test to damage and then move in.
  fs::path stage(std::uint64_t version, const std::string& name = "stamp") {
    return pack_stamp(package_cache(), staging_, name, version);
  }
  void publish(const fs::path& staged, std::uint64_t version, const std::string& name = "stamp") {
    fs::create_directories(repo_ / name);
    fs::rename(staged, repo_ / name / std::to_string(version));
  }

  json package(const std::string& name = "stamp", const char* token = kAliceToken) {
    auto r = get("/v1/repository/" + name, token);
    EXPECT_TRUE(r);
    return r ? body_of(r) : json();
  }
  static const json* version_of(const json& package, std::uint64_t version) {
    for (const json& v : package["versions"])
      if (v["version"] == version) return &v;
    return nullptr;
  }
  // Waits (poll mode) until `done` holds for the package's description; the poller runs every 20 ms.
  template <class F>
  json wait_for(F done, const std::string& name = "stamp") {
    json p;
    for (int i = 0; i < 3000; ++i) {
      p = package(name);
      if (done(p)) return p;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "gave up waiting; last state: " << p.dump();
    return p;
  }

  std::uint64_t buffer() {
    auto r = post("/v1/buffers", json{{"bytes", 1024}}.dump());
    EXPECT_EQ(r ? r->status : -1, 201);
    return body_of(r)["id"];
  }
  httplib::Result launch(const std::string& kernel, json arguments, const char* token = kAliceToken,
                         const char* function = "stamp") {
    json body = {{"kernel", kernel}, {"grid", 1}, {"block", 256}, {"arguments", std::move(arguments)}, {"wait", true}};
    if (function) body["function"] = function;
    return post("/v1/launches", body.dump(), token);
  }
  json stamp_args(std::uint64_t buffer) { return json::array({{{"buffer", buffer}}, {{"type", "u32"}, {"value", 256}}}); }

  // The SHA-256 the version's manifest records for `file`: the image key a launch of it carries.
  std::string key_of(std::uint64_t version, const std::string& file = "sm_90.cubin", const std::string& name = "stamp") {
    std::ifstream in(repo_ / name / std::to_string(version) / "manifest.json");
    const json m = json::parse(in);
    const json& entry = m["files"][file];
    return entry.is_object() ? entry["sha256"].get<std::string>() : entry.get<std::string>();
  }

  FakeGpu gpu_;
  fs::path repo_, staging_;
};

TEST_F(Repository, ModeNoneServesTheNewestVersionFromTheFirstRequest) {
  pack(1);
  pack(2);
  start();
  const json p = package();
  EXPECT_EQ(p["serving"], 2) << p.dump();
  ASSERT_NE(version_of(p, 1), nullptr);
  EXPECT_EQ((*version_of(p, 1))["state"], "unloaded") << "latest 1 loads only the newest";
  EXPECT_EQ((*version_of(p, 2))["state"], "ready");
  EXPECT_EQ((*version_of(p, 2))["entry_points"], json::array({"stamp", "add"}));

  auto r = launch("stamp", stamp_args(buffer()));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["package"], json({{"name", "stamp"}, {"version", 2}})) << r->body;
  const auto launched = gpu_.launched();
  ASSERT_EQ(launched.size(), 1u);
  EXPECT_EQ(launched[0].image_key, key_of(2));
  EXPECT_EQ(launched[0].kernel, "stamp");
  EXPECT_EQ(launched[0].package_version, 2u);

  auto old = launch("stamp:1", stamp_args(buffer()));
  EXPECT_EQ(old->status, 404) << old->body;
  EXPECT_NE(old->body.find("unloaded"), std::string::npos) << old->body;
  auto none = launch("nothing", stamp_args(buffer()));
  EXPECT_EQ(none->status, 404) << none->body;
  EXPECT_EQ(body_of(none)["error"]["field"], "kernel");
}

TEST_F(Repository, ArgumentsAreCheckedAgainstTheManifestBeforeTheGpuSeesThem) {
  pack(1);
  start();
  const std::uint64_t b = buffer();
  auto too_few = launch("stamp", json::array({{{"buffer", b}}}));
  EXPECT_EQ(too_few->status, 400);
  EXPECT_NE(too_few->body.find("stamp takes 2 (ptr, u32), got 1"), std::string::npos) << too_few->body;
  auto wrong_type = launch("stamp", json::array({{{"buffer", b}}, {{"type", "f32"}, {"value", 1.0}}}));
  EXPECT_EQ(wrong_type->status, 400);
  EXPECT_EQ(body_of(wrong_type)["error"]["field"], "arguments[1]");
  EXPECT_NE(wrong_type->body.find("is u32, got f32"), std::string::npos) << wrong_type->body;
  auto scalar_for_pointer = launch("stamp", json::array({{{"type", "u64"}, {"value", 0}}, {{"type", "u32"}, {"value", 1}}}));
  EXPECT_EQ(scalar_for_pointer->status, 400);
  EXPECT_NE(scalar_for_pointer->body.find("a pointer (pass a buffer)"), std::string::npos) << scalar_for_pointer->body;
  auto no_such_entry = launch("stamp", stamp_args(b), kAliceToken, "missing");
  EXPECT_EQ(no_such_entry->status, 400);
  EXPECT_NE(no_such_entry->body.find("its entry points: stamp, add"), std::string::npos) << no_such_entry->body;
  auto ambiguous = launch("stamp", stamp_args(b), kAliceToken, nullptr);
  EXPECT_EQ(ambiguous->status, 400);
  EXPECT_NE(ambiguous->body.find("name one"), std::string::npos) << ambiguous->body;
  auto bad_reference = launch("stamp:0", stamp_args(b));
  EXPECT_EQ(bad_reference->status, 400) << bad_reference->body;
  EXPECT_TRUE(gpu_.launched().empty()) << "nothing refused reached the GPU";

  auto add = launch("stamp:1", json::array({{{"buffer", b}}, {{"type", "u32"}, {"value", 5}}, {{"type", "u32"}, {"value", 256}}}),
                    kAliceToken, "add");
  EXPECT_EQ(add->status, 200) << add->body;
}

TEST_F(Repository, PollModeServesANewVersionAndFallsBackWhenItIsRemoved) {
  config_.repository.mode = service::RepositoryMode::poll;
  pack(1);
  start();
  EXPECT_EQ(package()["serving"], 1);
  publish(stage(2), 2);
  json p = wait_for([](const json& p) { return p["serving"] == 2; });
  EXPECT_EQ(p["previous"], 1) << "the version served before stays loaded for a rollback";
  EXPECT_EQ((*version_of(p, 1))["state"], "ready");

  auto r = launch("stamp", stamp_args(buffer()));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(gpu_.launched().back().image_key, key_of(2));

  fs::remove_all(repo_ / "stamp" / "2");
  p = wait_for([](const json& p) { return p["serving"] == 1 && p["versions"].size() == 1; });
  auto back = launch("stamp", stamp_args(buffer()));
  ASSERT_EQ(back->status, 200) << back->body;
  EXPECT_EQ(body_of(back)["package"]["version"], 1);

  fs::remove_all(repo_ / "stamp");
  for (int i = 0; i < 3000 && get("/v1/repository/stamp")->status != 404; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(get("/v1/repository/stamp")->status, 404);
  EXPECT_EQ(launch("stamp", stamp_args(buffer()))->status, 404);
}

TEST_F(Repository, ARefusedVersionNeverReplacesTheOneInService) {
  config_.repository.mode = service::RepositoryMode::poll;
  pack(1);
  start();

  // A CUBIN damaged after packing: its checksum no longer matches.
  fs::path v2 = stage(2);
  {
    std::fstream f(v2 / "sm_90.cubin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  publish(v2, 2);
  json p = wait_for([](const json& p) {
    const json* v = version_of(p, 2);
    return v && (*v)["state"] == "failed";
  });
  EXPECT_EQ((*version_of(p, 2))["problem"], "checksum_mismatch") << p.dump();
  EXPECT_NE((*version_of(p, 2))["reason"].get<std::string>().find("sm_90.cubin"), std::string::npos) << p.dump();
  EXPECT_EQ(p["serving"], 1);
  auto r = launch("stamp", stamp_args(buffer()));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["package"]["version"], 1);
  auto named = launch("stamp:2", stamp_args(buffer()));
  EXPECT_EQ(named->status, 404) << named->body;
  EXPECT_NE(named->body.find("is failed"), std::string::npos) << named->body;

  // A manifest that does not parse, and one whose folder says another version.
  fs::path v3 = stage(3);
  std::ofstream(v3 / "manifest.json") << "{\"format\": 1, \"name\": ";
  publish(v3, 3);
  fs::path v4 = stage(5);  // packed as version 5, published as 4
  publish(v4, 4);
  p = wait_for([](const json& p) {
    const json* a = version_of(p, 3);
    const json* b = version_of(p, 4);
    return a && b && (*a)["state"] == "failed" && (*b)["state"] == "failed";
  });
  EXPECT_EQ((*version_of(p, 3))["problem"], "manifest_invalid") << p.dump();
  EXPECT_EQ((*version_of(p, 4))["problem"], "manifest_invalid") << p.dump();
  EXPECT_NE((*version_of(p, 4))["reason"].get<std::string>().find("its folder is stamp/4"), std::string::npos) << p.dump();
  EXPECT_EQ(p["serving"], 1);

  // A version folder that is a symbolic link out of the repository.
  fs::path outside = stage(6);
  fs::create_directory_symlink(outside, repo_ / "stamp" / "6");
  p = wait_for([](const json& p) {
    const json* v = version_of(p, 6);
    return v && (*v)["state"] == "failed";
  });
  EXPECT_EQ((*version_of(p, 6))["problem"], "path_outside") << p.dump();
  EXPECT_EQ(p["serving"], 1);

  const std::string metrics = get("/metrics")->body;
  EXPECT_NE(metrics.find("kiln_repository_events_total{event=\"refused\"} 4"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kiln_repository_versions{state=\"failed\"} 4"), std::string::npos) << metrics;
}

TEST_F(Repository, AHalfWrittenVersionIsRetriedOnceItsFilesSettle) {
  config_.repository.mode = service::RepositoryMode::poll;
  pack(1);
  start();
  // A copy in progress: the manifest has arrived, the CUBIN not yet.
  const fs::path v2 = stage(2);
  const fs::path target = repo_ / "stamp" / "2";
  fs::create_directories(target);
  fs::copy_file(v2 / "manifest.json", target / "manifest.json");
  json p = wait_for([](const json& p) {
    const json* v = version_of(p, 2);
    return v && (*v)["state"] == "failed";
  });
  EXPECT_EQ((*version_of(p, 2))["problem"], "incomplete") << p.dump();
  EXPECT_EQ(p["serving"], 1);
  // The rest of the copy lands: the next scan sees other files and loads it.
  for (const fs::directory_entry& e : fs::directory_iterator(v2))
    if (e.path().filename() != "manifest.json") fs::copy(e.path(), target / e.path().filename(), fs::copy_options::recursive);
  p = wait_for([](const json& p) { return p["serving"] == 2; });
  EXPECT_EQ((*version_of(p, 2))["state"], "ready") << p.dump();
}

TEST_F(Repository, RollbackServesThePreviousVersionAtOnceAndHoldsThere) {
  config_.repository.mode = service::RepositoryMode::poll;
  pack(1);
  start();
  publish(stage(2), 2);
  wait_for([](const json& p) { return p["serving"] == 2; });

  auto refused = post("/v1/repository/stamp/rollback", "", kBobToken);
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_NE(refused->body.find("repository.operators"), std::string::npos) << refused->body;

  auto r = post("/v1/repository/stamp/rollback", "");
  ASSERT_EQ(r->status, 200) << r->body;
  json p = body_of(r);
  EXPECT_EQ(p["serving"], 1);
  EXPECT_EQ(p["previous"], 2);
  EXPECT_EQ(p["held"], true);
  auto after = launch("stamp", stamp_args(buffer()));
  EXPECT_EQ(body_of(after)["package"]["version"], 1) << after->body;

  // Scans go on, and do not bring version 2 back by themselves.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(package()["serving"], 1);
  // A newer version does.
  publish(stage(3), 3);
  p = wait_for([](const json& p) { return p["serving"] == 3; });
  EXPECT_EQ(p["held"], false);
  EXPECT_EQ(p["previous"], 1);

  const std::string metrics = get("/metrics")->body;
  EXPECT_NE(metrics.find("kiln_repository_events_total{event=\"rolled_back\"} 1"), std::string::npos) << metrics;
}

TEST_F(Repository, RollbackNeedsAPreviousVersion) {
  pack(1);
  start();
  auto r = post("/v1/repository/stamp/rollback", "");
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("no previous version"), std::string::npos) << r->body;
  auto with_version = post("/v1/repository/stamp/rollback", R"({"version": 1})");
  EXPECT_EQ(with_version->status, 400) << with_version->body;
}

TEST_F(Repository, ExplicitModeLoadsAndUnloadsByApi) {
  config_.repository.mode = service::RepositoryMode::explicit_;
  pack(1);
  pack(2);
  start();
  json p = package();
  EXPECT_TRUE(p["serving"].is_null()) << "explicit mode loads nothing at start unless repository.load names it";
  auto not_yet = launch("stamp", stamp_args(buffer()));
  EXPECT_EQ(not_yet->status, 503) << not_yet->body;
  EXPECT_EQ(body_of(not_yet)["error"]["code"], "not_serving");

  EXPECT_EQ(post("/v1/repository/stamp/load", "", kBobToken)->status, 403);
  auto loaded = post("/v1/repository/stamp/load", "");
  ASSERT_EQ(loaded->status, 200) << loaded->body;
  EXPECT_EQ(body_of(loaded)["serving"], 2);

  auto one = post("/v1/repository/stamp/load", R"({"version": 1})");
  ASSERT_EQ(one->status, 200) << one->body;
  EXPECT_EQ(body_of(one)["serving"], 1) << "a load that names a version serves it";
  EXPECT_EQ(body_of(launch("stamp", stamp_args(buffer())))["package"]["version"], 1);

  auto missing = post("/v1/repository/stamp/load", R"({"version": 9})");
  EXPECT_EQ(missing->status, 404) << missing->body;
  auto bad = post("/v1/repository/stamp/load", R"({"version": "1"})");
  EXPECT_EQ(bad->status, 400) << bad->body;

  auto unloaded = post("/v1/repository/stamp/unload", "");
  ASSERT_EQ(unloaded->status, 200) << unloaded->body;
  EXPECT_TRUE(body_of(unloaded)["serving"].is_null());
  EXPECT_EQ(launch("stamp", stamp_args(buffer()))->status, 503);
}

TEST_F(Repository, ExplicitLoadOfAVersionThatFailsSaysWhy) {
  config_.repository.mode = service::RepositoryMode::explicit_;
  pack(1);
  fs::path v2 = stage(2);
  fs::remove(v2 / "sm_90.cubin");
  publish(v2, 2);
  start();
  auto r = post("/v1/repository/stamp/load", R"({"version": 2})");
  EXPECT_EQ(r->status, 422) << r->body;
  const json e = body_of(r)["error"];
  EXPECT_EQ(e["code"], "package_refused");
  EXPECT_EQ(e["problem"], "incomplete") << r->body;
}

TEST_F(Repository, ModeNoneRefusesLoadAndUnloadButNotRollback) {
  pack(1);
  start();
  auto r = post("/v1/repository/stamp/load", "");
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("control mode is none"), std::string::npos) << r->body;
  EXPECT_EQ(post("/v1/repository/stamp/unload", "")->status, 403);
}

TEST_F(Repository, TheVersionPolicyDecidesWhatStaysLoaded) {
  config_.repository.latest = 2;
  pack(1);
  pack(2);
  pack(3);
  config_.repository.pinned = {{"pinned", {1}}};
  pack(1, {"sm_90"}, false, {}, "pinned");
  pack(2, {"sm_90"}, false, {}, "pinned");
  start();
  json p = package();
  EXPECT_EQ((*version_of(p, 1))["state"], "unloaded");
  EXPECT_EQ((*version_of(p, 2))["state"], "ready");
  EXPECT_EQ((*version_of(p, 3))["state"], "ready");
  EXPECT_EQ(p["serving"], 3);
  EXPECT_EQ(launch("stamp:2", stamp_args(buffer()))->status, 200) << "every loaded version may be named";

  json pinned = package("pinned");
  EXPECT_EQ(pinned["serving"], 1) << pinned.dump();
  EXPECT_EQ((*version_of(pinned, 2))["state"], "unloaded") << pinned.dump();
}

TEST_F(Repository, ANewestVersionThatFailsAtStartLeavesTheNextOneServing) {
  pack(1);
  fs::path v2 = stage(2);
  std::ofstream(v2 / "manifest.json", std::ios::app) << "trailing";
  publish(v2, 2);
  start();
  const json p = package();
  EXPECT_EQ(p["serving"], 1) << p.dump();
  EXPECT_EQ((*version_of(p, 2))["state"], "failed");
}

TEST_F(Repository, ManifestTenantsDecideWhoSeesAndLaunchesAPackage) {
  config_.repository.operators = {};
  pack(1, {"sm_90"}, false, {"bob"});
  start();
  EXPECT_EQ(get("/v1/repository/stamp", kAliceToken)->status, 404);
  EXPECT_TRUE(body_of(get("/v1/repository", kAliceToken))["packages"].empty());
  EXPECT_EQ(launch("stamp", stamp_args(buffer()), kAliceToken)->status, 404);
  EXPECT_EQ(body_of(get("/v1/repository", kBobToken))["packages"].size(), 1u);
  auto b = post("/v1/buffers", json{{"bytes", 1024}}.dump(), kBobToken);
  auto r = launch("stamp", stamp_args(body_of(b)["id"]), kBobToken);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(Repository, ImagesAreChosenByArchitecture) {
  pack(1, {"compute_80"}, false, {}, "ptx_only");
  pack(1, {"sm_80"}, false, {}, "sm80_only");
  pack(1, {"sm_80"}, true, {}, "sm80_with_source");
  start();
  const json ptx = package("ptx_only");
  EXPECT_EQ(ptx["serving"], 1) << ptx.dump();
  EXPECT_NE((*version_of(ptx, 1))["images"][0].get<std::string>().find("compute_80.ptx (PTX, compiled by the driver)"),
            std::string::npos)
      << ptx.dump();
  const json none = package("sm80_only");
  EXPECT_EQ((*version_of(none, 1))["problem"], "no_image") << none.dump();
  EXPECT_NE((*version_of(none, 1))["reason"].get<std::string>().find("sm_90"), std::string::npos) << none.dump();
  const json compiled = package("sm80_with_source");
  EXPECT_EQ(compiled["serving"], 1) << compiled.dump();
  EXPECT_NE((*version_of(compiled, 1))["images"][0].get<std::string>().find("source, compiled for it"), std::string::npos)
      << compiled.dump();

  auto r = launch("ptx_only", stamp_args(buffer()));
  ASSERT_EQ(r->status, 200) << r->body;
  const auto launched = gpu_.launched();
  ASSERT_FALSE(launched.empty());
  EXPECT_EQ(launched.back().image->back(), '\0') << "PTX reaches the driver NUL-terminated";
  EXPECT_EQ(launched.back().image_key, key_of(1, "compute_80.ptx", "ptx_only"));
}

TEST_F(Repository, ALaunchInFlightFinishesOnTheVersionItStartedWith) {
  config_.repository.mode = service::RepositoryMode::poll;
  pack(1);
  start();
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  gpu_.set_launch_hook([&](const service::LaunchSpec&) {
    if (!first.exchange(false)) return;
    entered.set_value();
    released.wait();
  });
  const std::uint64_t b = buffer();
  auto in_flight = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(std::chrono::seconds(60));
    json body = {{"kernel", "stamp"}, {"function", "stamp"}, {"arguments", stamp_args(b)}, {"wait", true}};
    return c.Post("/v1/launches", auth(kAliceToken), body.dump(), "application/json");
  });
  entered.get_future().wait();
  publish(stage(2), 2);
  wait_for([](const json& p) { return p["serving"] == 2; });
  auto during = launch("stamp", stamp_args(buffer()));
  EXPECT_EQ(body_of(during)["package"]["version"], 2) << during->body;
  release.set_value();
  auto r = in_flight.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(body_of(r)["package"]["version"], 1) << r->body;
  const auto launched = gpu_.launched();
  ASSERT_EQ(launched.size(), 2u);
  EXPECT_EQ(launched[0].image_key, key_of(1));
  EXPECT_EQ(launched[1].image_key, key_of(2));
}

TEST_F(Repository, WithoutARepositoryTheRoutesSaySo) {
  config_.repository.path.clear();
  start();
  const json index = body_of(get("/v1/repository"));
  EXPECT_EQ(index["enabled"], false);
  auto r = get("/v1/repository/stamp");
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("--repository"), std::string::npos) << r->body;
  auto l = post("/v1/launches", json{{"kernel", "stamp"}, {"function", "stamp"}}.dump());
  EXPECT_EQ(l->status, 404) << l->body;
}

TEST_F(Repository, AFolderThatIsNotThereStopsTheStart) {
  config_.repository.path = dir_.path() / "absent";
  EXPECT_THROW(start(), Error);
}

}  // namespace
}  // namespace kiln::testing
