#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "kiln/driver/error.hpp"
#include "kiln/service/token_store.hpp"
#include "support/error_message.hpp"
#include "support/http_fixture.hpp"

namespace kiln::service {
namespace {

using kiln::testing::error_message_of;

TEST(TokenStore, ParsesTenantTokenLines) {
  const TokenStore store = TokenStore::parse(
      "# kilnd tokens\n"
      "alice  aaaaaaaaaaaaaaaa1111   # first key\n"
      "\n"
      "alice\taaaaaaaaaaaaaaaa2222\r\n"
      "bob bbbbbbbbbbbbbbbb0000\n",
      "tokens");
  EXPECT_EQ(store.token_count(), 3u);
  EXPECT_EQ(store.tenant_for("aaaaaaaaaaaaaaaa1111"), "alice");
  EXPECT_EQ(store.tenant_for("aaaaaaaaaaaaaaaa2222"), "alice");
  EXPECT_EQ(store.tenant_for("bbbbbbbbbbbbbbbb0000"), "bob");
  EXPECT_EQ(store.tenant_for("bbbbbbbbbbbbbbbb000"), std::nullopt);
  EXPECT_EQ(store.tenant_for(""), std::nullopt);
  EXPECT_EQ(store.tenants(), (std::vector<std::string>{"alice", "bob"}));
}

TEST(TokenStore, BadLinesAreNamedWithTheirLineNumber) {
  EXPECT_NE(error_message_of([] { TokenStore::parse("alice aaaaaaaaaaaaaaaa1111\njustone\n", "t.txt"); })
                .find("t.txt:2: expected 'tenant token', found one word"),
            std::string::npos);
  EXPECT_NE(error_message_of([] { TokenStore::parse("a b c\n", "t.txt"); }).find("t.txt:1: expected 'tenant token', found more"),
            std::string::npos);
  EXPECT_NE(error_message_of([] { TokenStore::parse("alice short\n", "t.txt"); }).find("16-512 printable"), std::string::npos);
  EXPECT_NE(error_message_of([] { TokenStore::parse("al/ice aaaaaaaaaaaaaaaa1111\n", "t.txt"); }).find("tenant name 'al/ice'"),
            std::string::npos);
  EXPECT_NE(error_message_of([] { TokenStore::parse("a aaaaaaaaaaaaaaaa1111\nb aaaaaaaaaaaaaaaa1111\n", "t.txt"); })
                .find("t.txt:2: this token is already listed"),
            std::string::npos);
  EXPECT_NE(error_message_of([] { TokenStore::parse("# nothing\n\n", "t.txt"); }).find("t.txt: no tokens listed"), std::string::npos);
}

TEST(TokenStore, LoadsFileAndNamesMissingOne) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "tokens") << "ops 0123456789abcdef0123\n";
  EXPECT_EQ(TokenStore::load(dir.path() / "tokens").tenant_for("0123456789abcdef0123"), "ops");
  EXPECT_NE(error_message_of([&] { TokenStore::load(dir.path() / "nope"); }).find("nope"), std::string::npos);
}

TEST(TokenStore, GeneratedTokensAreLongAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    const std::string token = generate_token();
    EXPECT_EQ(token.size(), 64u);
    EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos);
    seen.insert(token);
  }
  EXPECT_EQ(seen.size(), 64u);
  const std::string token = generate_token();
  EXPECT_EQ(TokenStore::single("default", token).tenant_for(token), "default");
}

}  // namespace
}  // namespace kiln::service
