#include <gtest/gtest.h>

#include <sys/stat.h>

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

// What HTTP's Authorization header and gRPC's authorization metadata both go through.
TEST(TokenStore, ABearerCredentialGivesItsTenantOrWhyNot) {
  const TokenStore store = TokenStore::single("alice", "aaaaaaaaaaaaaaaa1111");
  auto ok = store.check_bearer("Bearer aaaaaaaaaaaaaaaa1111", "Authorization", "header");
  EXPECT_EQ(ok.tenant, "alice");
  EXPECT_TRUE(ok.why.empty());
  EXPECT_EQ(store.check_bearer("", "Authorization", "header").why, "missing 'Authorization: Bearer <token>' header");
  EXPECT_EQ(store.check_bearer("Basic xyz", "authorization", "metadata").why,
            "the authorization metadata must use the Bearer scheme");
  EXPECT_EQ(store.check_bearer("Bearer ", "Authorization", "header").why,
            "the Authorization header must use the Bearer scheme");
  auto wrong = store.check_bearer("Bearer aaaaaaaaaaaaaaaa2222", "Authorization", "header");
  EXPECT_FALSE(wrong.tenant);
  EXPECT_EQ(wrong.why, "unknown bearer token") << "never the token itself";
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
  std::filesystem::permissions(dir.path() / "tokens", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(TokenStore::load(dir.path() / "tokens").tenant_for("0123456789abcdef0123"), "ops");
  EXPECT_NE(error_message_of([&] { TokenStore::load(dir.path() / "nope"); }).find("nope"), std::string::npos);
}

// A tokens file others may read hands out every tenant's identity; one they may write lets them
// add their own token. Refused, naming the file, its mode and the fix, unless explicitly allowed.
TEST(TokenStore, FilesGroupOrOthersMayAccessAreRefusedUnlessAllowed) {
  testing::TempDir dir;
  const auto file = dir.path() / "tokens";
  std::ofstream(file) << "ops 0123456789abcdef0123\n";
  for (const mode_t mode : {0644, 0666, 0640, 0604, 0620, 0602, 0660}) {
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    const std::string message = error_message_of([&] { TokenStore::load(file); });
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::string("mode ") + octal), std::string::npos) << message;
    EXPECT_NE(message.find("chmod 600 " + file.string()), std::string::npos) << message;
    EXPECT_NE(message.find("--allow-insecure-tokens"), std::string::npos) << message;
    std::string warning;
    EXPECT_EQ(TokenStore::load(file, /*allow_insecure=*/true, &warning).tenant_for("0123456789abcdef0123"), "ops");
    EXPECT_NE(warning.find(std::string("mode ") + octal), std::string::npos) << warning;
  }
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  EXPECT_NE(error_message_of([&] { TokenStore::load(file); }).find("readable by its group and every user"), std::string::npos);
  ASSERT_EQ(::chmod(file.c_str(), 0666), 0);
  EXPECT_NE(error_message_of([&] { TokenStore::load(file); }).find("whoever writes it can add tokens"), std::string::npos);
  for (const mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
    std::string warning = "stale";
    EXPECT_EQ(TokenStore::load(file, false, &warning).tenant_for("0123456789abcdef0123"), "ops");
    EXPECT_EQ(warning, "");
  }
}

// The mode is the opened file's (fstat on the descriptor): a symbolic link (always 0777 itself)
// is judged by its target, and what is not a regular file is refused.
TEST(TokenStore, ALinkIsJudgedByItsTarget) {
  testing::TempDir dir;
  const auto target = dir.path() / "real-tokens", link = dir.path() / "tokens";
  std::ofstream(target) << "ops 0123456789abcdef0123\n";
  std::filesystem::create_symlink(target, link);
  ASSERT_EQ(::chmod(target.c_str(), 0600), 0);
  EXPECT_EQ(TokenStore::load(link).tenant_for("0123456789abcdef0123"), "ops");
  ASSERT_EQ(::chmod(target.c_str(), 0666), 0);
  EXPECT_NE(error_message_of([&] { TokenStore::load(link); }).find("mode 0666"), std::string::npos);
  EXPECT_NE(error_message_of([&] { TokenStore::load(dir.path()); }).find("not a regular file"), std::string::npos);
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
