// The facts file: a round trip through JSON, and every malformed field named in the error.
#include <gtest/gtest.h>

#include "kiln/driver/error.hpp"

#include <fstream>

#include "kiln/topology/facts.hpp"
#include "support/sysfs_tree.hpp"

namespace {

using namespace kiln::topology;

std::string fixture(const std::string& name) { return std::string(KILN_TOPOLOGY_FIXTURES) + "/" + name; }

std::string error_of(const std::string& json) {
  try {
    parse_facts(json, "bad.json");
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::invalid_argument));
    return e.what();
  }
  return {};
}

const std::string kGpu =
    R"({"uuid": "GPU-11111111-2222-3333-4444-555555555555", "pci_bus_id": "00000000:3B:00.0", "name": "X",
        "memory_total": 100})";

std::string doc(const std::string& gpus, const std::string& extra = "") {
  return R"({"format": "kiln-topology-facts/1", "gpus": [)" + gpus + "]" + extra + "}";
}

TEST(Facts, RoundTripKeepsEverything) {
  const MachineFacts a = load_facts(fixture("dgx-h100-8gpu/facts.json"));
  ASSERT_EQ(a.gpus.size(), 8u);
  EXPECT_EQ(a.gpus[0].nvlinks.size(), 18u);
  EXPECT_EQ(a.gpus[0].nvlinks[17].remote_type, NvLinkPeerType::switch_);
  EXPECT_EQ(a.p2p.size(), 56u);
  MachineFacts b = parse_facts(facts_to_json(a));
  EXPECT_EQ(facts_to_json(b), facts_to_json(a));
  EXPECT_EQ(b.gpus[3].pci_bus_id, "0000:5d:00.0");
  EXPECT_EQ(b.gpus[3].memory_free, a.gpus[3].memory_free);
  ASSERT_NE(b.find_p2p(b.gpus[0].uuid, b.gpus[7].uuid), nullptr);
  EXPECT_TRUE(b.find_p2p(b.gpus[0].uuid, b.gpus[7].uuid)->native_atomics);
  EXPECT_EQ(b.find_p2p(b.gpus[0].uuid, b.gpus[0].uuid), nullptr);
}

TEST(Facts, MigAndEnvironmentSurviveARoundTrip) {
  MachineFacts f = kiln::testing::simple_facts({{"GPU-11111111-2222-3333-4444-555555555555", "0000:3b:00.0"}});
  f.cuda_env.visible_devices = "0";
  f.gpus[0].mig_enabled = true;
  f.gpus[0].mig_instances.push_back({"MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", 1, 0, "1g.10gb", 10ull << 30});
  const MachineFacts g = parse_facts(facts_to_json(f));
  EXPECT_EQ(g.cuda_env.visible_devices, "0");
  EXPECT_FALSE(g.cuda_env.device_order);
  ASSERT_EQ(g.gpus[0].mig_instances.size(), 1u);
  EXPECT_EQ(g.gpus[0].mig_instances[0].name, "1g.10gb");
  EXPECT_EQ(g.gpus[0].mig_instances[0].gpu_instance, 1);
}

TEST(Facts, BusIdsAreCanonical) {
  const MachineFacts f = parse_facts(doc(kGpu));
  EXPECT_EQ(f.gpus[0].pci_bus_id, "0000:3b:00.0");
  EXPECT_FALSE(f.gpus[0].cuda_ordinal);
  EXPECT_FALSE(f.gpus[0].memory_free);
}

TEST(Facts, ErrorsNameTheFileAndTheField) {
  EXPECT_NE(error_of("{").find("bad.json: (document): not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"format": "other/2", "gpus": []})").find("\"other/2\" is not kiln-topology-facts/1"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"format": "kiln-topology-facts/1"})").find(".gpus: missing"), std::string::npos);
  const std::string no_uuid = error_of(doc(R"({"pci_bus_id": "0000:01:00.0", "name": "x", "memory_total": 1})"));
  EXPECT_NE(no_uuid.find("bad.json: gpus[0].uuid: missing"), std::string::npos) << no_uuid;
  const std::string bad_bus = error_of(doc(
      R"({"uuid": "GPU-1", "pci_bus_id": "zz", "name": "x", "memory_total": 1})"));
  EXPECT_NE(bad_bus.find("gpus[0].pci_bus_id: \"zz\" is not a PCI address"), std::string::npos) << bad_bus;
  EXPECT_NE(error_of(doc(R"({"uuid": "1234", "pci_bus_id": "0000:01:00.0", "name": "x", "memory_total": 1})"))
                .find("does not start with GPU-"),
            std::string::npos);
  EXPECT_NE(error_of(doc(R"({"uuid": "GPU-1", "pci_bus_id": "0000:01:00.0", "name": "x", "memory_total": "big"})"))
                .find("gpus[0].memory_total: expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of(doc(R"({"uuid": "GPU-1", "pci_bus_id": "0000:01:00.0", "name": "x", "memory_total": 1,
                             "memory_free": 2})"))
                .find("not within 0..memory_total"),
            std::string::npos);
  EXPECT_NE(error_of(doc(kGpu + "," + kGpu)).find("appears twice"), std::string::npos);
  EXPECT_NE(error_of(doc(R"({"uuid": "GPU-1", "pci_bus_id": "0000:01:00.0", "name": "x", "memory_total": 1,
                             "nvlinks": [{"link": 0, "remote_pci_bus_id": "0000:02:00.0", "remote_type": "cable"}]})"))
                .find("gpus[0].nvlinks[0].remote_type: \"cable\" is not one of"),
            std::string::npos);
  EXPECT_NE(error_of(doc(kGpu, R"(, "p2p": [{"a": "GPU-11111111-2222-3333-4444-555555555555", "b": "GPU-x"}])"))
                .find("p2p[0]: GPU-x is not one of the GPUs listed"),
            std::string::npos);
  EXPECT_NE(error_of(doc(R"({"uuid": "GPU-1", "pci_bus_id": "0000:01:00.0", "name": "x", "memory_total": 1,
                             "mig": {"enabled": true, "instances": [{"uuid": "GPU-2", "gpu_instance": 1,
                             "compute_instance": 0}]}})"))
                .find("gpus[0].mig.instances[0].uuid: \"GPU-2\" does not start with MIG-"),
            std::string::npos);
}

TEST(Facts, UnreadableFileIsNamed) {
  try {
    load_facts("/nonexistent/facts.json");
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/facts.json"), std::string::npos);
  }
}

}  // namespace
