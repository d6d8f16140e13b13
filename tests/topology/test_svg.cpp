// The SVG picture: well-formed XML, and the parts of each machine drawn and labelled.
#include <gtest/gtest.h>

#include "kiln/topology/svg.hpp"
#include "kiln/topology/topology.hpp"
#include "support/sysfs_tree.hpp"
#include "support/xml_check.hpp"

namespace {

using namespace kiln::topology;
using kiln::testing::xml_problem;

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto pos = text.find(part); pos != std::string::npos; pos = text.find(part, pos + 1)) ++n;
  return n;
}

Topology fixture(const std::string& name) {
  return discover_fixture(std::string(KILN_TOPOLOGY_FIXTURES) + "/" + name, CudaEnvironment{});
}

TEST(XmlCheck, CatchesBrokenMarkup) {
  EXPECT_EQ(xml_problem("<a x=\"1\"><b/>t &amp; u</a>"), "");
  EXPECT_NE(xml_problem("<a><b></a></b>"), "");
  EXPECT_NE(xml_problem("<a>"), "");
  EXPECT_NE(xml_problem("<a x=1/>"), "");
  EXPECT_NE(xml_problem("<a x=\"1\" x=\"2\"/>"), "");
  EXPECT_NE(xml_problem("<a>R&D</a>"), "");
  EXPECT_NE(xml_problem("<a/><b/>"), "");
  EXPECT_NE(xml_problem("<a>1 < 2</a>"), "");
}

TEST(Svg, DgxShowsNvSwitchesAndLabelledLinks) {
  const std::string svg = render_svg(fixture("dgx-h100-8gpu"));
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_EQ(count(svg, ">NVSwitch<"), 4u);
  EXPECT_EQ(count(svg, "NVLink ×5"), 16u);  // each GPU's 5-link edges to two switches
  EXPECT_EQ(count(svg, "NVLink ×4"), 16u);
  for (int i = 0; i < 8; ++i) EXPECT_NE(svg.find(">GPU" + std::to_string(i) + "  (CUDA"), std::string::npos) << i;
  EXPECT_EQ(count(svg, ">NUMA node 0<"), 1u);
  EXPECT_EQ(count(svg, ">NUMA node 1<"), 1u);
  EXPECT_EQ(count(svg, ">PCIe switch<"), 8u);
  EXPECT_NE(svg.find("SMP interconnect"), std::string::npos);
}

TEST(Svg, PcieServerShowsSwitchesAndRootComplexes) {
  const std::string svg = render_svg(fixture("pcie-8gpu-2socket"));
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, ">PCIe switch<"), 4u);
  EXPECT_EQ(count(svg, ">Root complex<"), 4u);
  EXPECT_EQ(count(svg, ">Root port<"), 4u);
  EXPECT_EQ(count(svg, ">PCIe Gen5 x16<"), 12u);  // root port→switch and switch→GPU edges
  EXPECT_EQ(count(svg, ">NVSwitch<"), 0u);
  EXPECT_NE(svg.find("CPUs 56-111,168-223"), std::string::npos);
}

TEST(Svg, OneGpuAndEscapedText) {
  MachineFacts f = load_facts(std::string(KILN_TOPOLOGY_FIXTURES) + "/h100-x1-vm/facts.json");
  f.gpus[0].name = "R&D <prototype> \"GPU\"";
  f.source = "a & b";
  DiscoveryOptions o;
  o.sysfs_root = std::string(KILN_TOPOLOGY_FIXTURES) + "/h100-x1-vm/sysfs";
  o.facts = f;
  o.cuda_env = CudaEnvironment{};
  const std::string svg = render_svg(discover(o));
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_NE(svg.find("R&amp;D &lt;prototype&gt; &quot;GPU&quot;"), std::string::npos);
  EXPECT_EQ(count(svg, ">Root complex<"), 1u);
}

TEST(Svg, DirectNvLinksAreArcs) {
  MachineFacts f = fixture("pcie-8gpu-2socket").facts();
  for (int l = 0; l < 12; ++l) {
    f.gpus[0].nvlinks.push_back({l, f.gpus[1].pci_bus_id, NvLinkPeerType::gpu});
    f.gpus[1].nvlinks.push_back({l, f.gpus[0].pci_bus_id, NvLinkPeerType::gpu});
  }
  DiscoveryOptions o;
  o.sysfs_root = std::string(KILN_TOPOLOGY_FIXTURES) + "/pcie-8gpu-2socket/sysfs";
  o.facts = f;
  o.cuda_env = CudaEnvironment{};
  const std::string svg = render_svg(discover(o));
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, ">NV12</text>"), 1u);
  EXPECT_EQ(count(svg, "<path "), 1u);
}

}  // namespace
