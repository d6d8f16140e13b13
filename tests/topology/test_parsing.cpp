// PCI addresses, CPU lists and link names: the small values everything else is built from.
#include <gtest/gtest.h>

#include "kiln/driver/error.hpp"
#include "kiln/topology/cpu_list.hpp"
#include "kiln/topology/link.hpp"
#include "kiln/topology/pci_address.hpp"

namespace {

using kiln::topology::CpuList;
using kiln::topology::Link;
using kiln::topology::LinkType;
using kiln::topology::PciAddress;

TEST(PciAddress, ParsesEverySpelling) {
  const PciAddress expected{0, 0x3b, 0, 0};
  EXPECT_EQ(PciAddress::parse("0000:3b:00.0"), expected);
  EXPECT_EQ(PciAddress::parse("00000000:3B:00.0"), expected);  // nvidia-smi, NVML
  EXPECT_EQ(PciAddress::parse("3b:00.0"), expected);           // lspci
  const auto a = PciAddress::parse("0001:c1:1f.7");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->domain, 1u);
  EXPECT_EQ(a->bus, 0xc1);
  EXPECT_EQ(a->device, 0x1f);
  EXPECT_EQ(a->function, 7);
  EXPECT_EQ(a->to_string(), "0001:c1:1f.7");
  EXPECT_EQ(a->to_nvml_string(), "00000001:C1:1F.7");
}

TEST(PciAddress, RefusesWhatIsNotOne) {
  for (const char* bad : {"", "0000:3b:00", "0000:3b:20.0", "0000:3b:00.8", "zz:00.0", "0000:3b:000.0",
                          "0000:3bb:00.0", "pci0000:00", "0000:3b:00.0x"})
    EXPECT_FALSE(PciAddress::parse(bad)) << bad;
  try {
    PciAddress::parse_or_throw("0000:zz:00.0", "the GPU's bus id");
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(kiln::Errc::invalid_argument));
    EXPECT_NE(std::string(e.what()).find("the GPU's bus id \"0000:zz:00.0\""), std::string::npos) << e.what();
  }
}

TEST(PciAddress, OrdersByDomainThenBus) {
  EXPECT_LT(*PciAddress::parse("0000:18:00.0"), *PciAddress::parse("0000:2a:00.0"));
  EXPECT_LT(*PciAddress::parse("0000:ff:00.0"), *PciAddress::parse("0001:00:00.0"));
}

TEST(CpuList, ParsesAndPrintsRanges) {
  const CpuList l = CpuList::parse("0-55,112-167\n");
  EXPECT_EQ(l.size(), 112u);
  EXPECT_TRUE(l.contains(0));
  EXPECT_TRUE(l.contains(167));
  EXPECT_FALSE(l.contains(56));
  EXPECT_EQ(l.to_string(), "0-55,112-167");
  EXPECT_EQ(CpuList::parse("3,1,2,7").to_string(), "1-3,7");
  EXPECT_TRUE(CpuList::parse("").empty());
  EXPECT_TRUE(CpuList::parse(" \n").empty());
}

TEST(CpuList, ParsesHexMasks) {
  EXPECT_EQ(CpuList::parse_mask("ffff").to_string(), "0-15");
  EXPECT_EQ(CpuList::parse_mask("00000000,000000ff,ffffffff,ffff0000,00000000,00ffffff,ffffffff").to_string(),
            "0-55,112-167");
  EXPECT_EQ(CpuList::parse_mask("5").to_string(), "0,2");
}

TEST(CpuList, ErrorsQuoteTheText) {
  for (const char* bad : {"0-", "a", "5-3", "1,,2", "-1"}) {
    try {
      CpuList::parse(bad);
      FAIL() << bad;
    } catch (const kiln::Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("\"") + bad + "\""), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(CpuList::parse_mask("fg"), kiln::Error);
  EXPECT_THROW(CpuList::parse_mask(""), kiln::Error);
}

TEST(CpuList, Intersects) {
  const CpuList a = CpuList::parse("0-7");
  const CpuList b = CpuList::parse("4-11");
  EXPECT_TRUE(a.intersects(b));
  EXPECT_EQ(a.intersection(b).to_string(), "4-7");
  EXPECT_FALSE(a.intersects(CpuList::parse("8-9")));
}

TEST(Link, NamesAndOrderAsNvidiaSmi) {
  EXPECT_EQ((Link{LinkType::self, 0}).to_string(), "X");
  EXPECT_EQ((Link{LinkType::nvlink, 18}).to_string(), "NV18");
  EXPECT_EQ((Link{LinkType::pix, 0}).to_string(), "PIX");
  EXPECT_EQ((Link{LinkType::pxb, 0}).to_string(), "PXB");
  EXPECT_EQ((Link{LinkType::phb, 0}).to_string(), "PHB");
  EXPECT_EQ((Link{LinkType::node, 0}).to_string(), "NODE");
  EXPECT_EQ((Link{LinkType::sys, 0}).to_string(), "SYS");
  EXPECT_TRUE((Link{LinkType::nvlink, 12}).better_than({LinkType::pix, 0}));
  EXPECT_TRUE((Link{LinkType::nvlink, 18}).better_than({LinkType::nvlink, 12}));
  EXPECT_FALSE((Link{LinkType::nvlink, 12}).better_than({LinkType::nvlink, 18}));
  EXPECT_TRUE((Link{LinkType::node, 0}).better_than({LinkType::sys, 0}));
  EXPECT_FALSE((Link{LinkType::sys, 0}).better_than({LinkType::sys, 0}));
}

}  // namespace
