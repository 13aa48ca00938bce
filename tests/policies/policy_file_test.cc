// The TOML policy file: a full example, and every kind of validation error with file:line:key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "policies/policy_file.h"
#include "tests/policies/doc_example.h"

namespace appvirt::policies {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;

using test_data::kDocExample;

// Parses text expected to be invalid and returns the issues as "file:line: key: message" lines.
std::vector<std::string> issues_of(std::string_view text) {
  auto r = parse_policy_toml(text, "p.toml");
  EXPECT_FALSE(r.has_value());
  std::vector<std::string> out;
  if (!r) {
    for (const auto& i : r.error().items) out.push_back(i.str());
  }
  return out;
}

TEST(PolicyFile, ReadsTheDocumentedExample) {
  auto r = parse_policy_toml(kDocExample, "example.toml");
  ASSERT_TRUE(r.has_value()) << r.error().report();
  const PolicySet& s = *r;
  EXPECT_EQ(s.defaults.isolation, Isolation::container);
  EXPECT_EQ(s.defaults.memory_max, Limit::of(1ull << 30));
  EXPECT_EQ(s.defaults.cpu_weight, 100);
  EXPECT_EQ(s.defaults.cpu_max, Limit::of(200));
  EXPECT_EQ(s.defaults.pids_max, Limit::of(512));
  EXPECT_EQ(s.defaults.max_sessions, 5);
  EXPECT_EQ(s.defaults.idle_timeout, seconds{7200});
  EXPECT_EQ(s.defaults.disconnect_timeout, seconds{900});
  EXPECT_EQ(s.defaults.apps, AppList::everything());
  EXPECT_EQ(s.defaults.clipboard, Clipboard::both);
  EXPECT_EQ(s.defaults.drive_redirection, false);
  EXPECT_EQ(s.defaults.network, Network::loopback);
  EXPECT_EQ(s.defaults.max_resolution, (ScreenSize{1920, 1080}));
  ASSERT_EQ(s.groups.size(), 3u);
  EXPECT_EQ(s.groups.at("staff").priority, 0);
  EXPECT_EQ(s.groups.at("staff").rule.memory_max, Limit::of(2ull << 30));
  EXPECT_EQ(s.groups.at("staff").rule.drive_redirection, true);
  EXPECT_EQ(s.groups.at("staff").rule.clipboard, std::nullopt);
  EXPECT_EQ(s.groups.at("developers").priority, 5);
  EXPECT_EQ(s.groups.at("developers").rule.apps, (AppList{false, {"code", "firefox", "xterm"}}));
  EXPECT_EQ(s.groups.at("developers").rule.cpu_max, Limit::of(400));
  EXPECT_EQ(s.groups.at("contractors").priority, 10);
  EXPECT_EQ(s.groups.at("contractors").rule.clipboard, Clipboard::to_client);
  EXPECT_EQ(s.groups.at("contractors").rule.idle_timeout, seconds{1800});
  ASSERT_EQ(s.users.size(), 2u);
  EXPECT_EQ(s.users.at("alice").isolation, Isolation::vm);
  EXPECT_EQ(s.users.at("alice").memory_max, Limit::of(8ull << 30));
  EXPECT_EQ(s.users.at("john.doe").max_sessions, 1);
  EXPECT_EQ(s.users.at("john.doe").memory_max, std::nullopt);
}

TEST(PolicyFile, EmptyFileIsAnEmptySet) {
  auto r = parse_policy_toml("", "p.toml");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, PolicySet{});
}

TEST(PolicyFile, GroupPriorityDefaultsToZero) {
  auto r = parse_policy_toml("[groups.staff]\nmemory_max = \"2G\"\n", "p.toml");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->groups.at("staff").priority, 0);
}

TEST(PolicyFile, UnknownKeysNameFileLineAndKey) {
  EXPECT_EQ(issues_of("[defaults]\nmemory = \"1G\"\n"),
            std::vector<std::string>{"p.toml:2: defaults.memory: unknown key"});
  EXPECT_EQ(issues_of("[groups.staff]\n\nmemory-max = \"1G\"\n"),
            std::vector<std::string>{
                "p.toml:3: groups.staff.memory-max: unknown key (did you mean memory_max?)"});
  EXPECT_EQ(
      issues_of("[user.alice]\nmemory_max = \"1G\"\n"),
      std::vector<std::string>{"p.toml:1: user: unknown key (expected defaults, groups or users)"});
  EXPECT_EQ(issues_of("version = 2\n"),
            std::vector<std::string>{
                "p.toml:1: version: unknown key (expected defaults, groups or users)"});
}

TEST(PolicyFile, PriorityOnlyInGroups) {
  EXPECT_EQ(
      issues_of("[users.alice]\npriority = 5\n"),
      std::vector<std::string>{
          "p.toml:2: users.alice.priority: unknown key (priority is only for [groups.NAME])"});
  EXPECT_EQ(issues_of("[defaults]\npriority = 5\n"),
            std::vector<std::string>{
                "p.toml:2: defaults.priority: unknown key (priority is only for [groups.NAME])"});
  EXPECT_EQ(issues_of("[groups.staff]\npriority = \"high\"\n"),
            std::vector<std::string>{
                "p.toml:2: groups.staff.priority: must be an integer (got \"high\")"});
  EXPECT_EQ(issues_of("[groups.staff]\npriority = 2000000\n"),
            std::vector<std::string>{"p.toml:2: groups.staff.priority: must be between -1000000 "
                                     "and 1000000 (got 2000000)"});
}

TEST(PolicyFile, WrongTypesOutOfRangeAndBadEnums) {
  EXPECT_EQ(
      issues_of("[defaults]\ncpu_weight = \"100\"\n"),
      std::vector<std::string>{"p.toml:2: defaults.cpu_weight: must be an integer (got \"100\")"});
  EXPECT_EQ(
      issues_of("[defaults]\ncpu_weight = 1.5\n"),
      std::vector<std::string>{"p.toml:2: defaults.cpu_weight: must be an integer (got 1.5)"});
  EXPECT_EQ(issues_of("[groups.staff]\ncpu_weight = 0\n"),
            std::vector<std::string>{
                "p.toml:2: groups.staff.cpu_weight: must be between 1 and 10000 (got 0)"});
  EXPECT_EQ(issues_of("[users.bob]\nmemory_max = \"8M\"\n"),
            std::vector<std::string>{
                "p.toml:2: users.bob.memory_max: must be between 16M and 1T (got \"8M\")"});
  EXPECT_EQ(issues_of("[defaults]\nclipboard = \"out\"\n"),
            std::vector<std::string>{"p.toml:2: defaults.clipboard: must be one of \"none\", "
                                     "\"to-client\", \"to-server\", \"both\" (got \"out\")"});
  EXPECT_EQ(issues_of("[defaults]\ndrive_redirection = \"yes\"\n"),
            std::vector<std::string>{
                "p.toml:2: defaults.drive_redirection: must be true or false (got \"yes\")"});
  EXPECT_EQ(issues_of("[defaults]\nidle_timeout = 1979-05-27\n"),
            std::vector<std::string>{
                "p.toml:2: defaults.idle_timeout: must be a duration such as \"90s\", \"15m\", "
                "\"2h\", \"1h30m\", or 0 / \"never\" (got \"1979-05-27\")"});
  EXPECT_EQ(issues_of("[defaults]\nnetwork = { mode = \"full\" }\n"),
            std::vector<std::string>{"p.toml:2: defaults.network: must be one of \"none\", "
                                     "\"loopback\", \"full\" (got {\"mode\":\"full\"})"});
}

TEST(PolicyFile, AppListProblems) {
  EXPECT_EQ(issues_of("[defaults]\napps = [\"*\", \"xterm\"]\n"),
            std::vector<std::string>{
                "p.toml:2: defaults.apps: \"*\" (all apps) must be the only element"});
  EXPECT_EQ(
      issues_of("[defaults]\napps = [\"xterm\", \"xterm\"]\n"),
      std::vector<std::string>{"p.toml:2: defaults.apps: element 2 \"xterm\" is listed twice"});
  EXPECT_EQ(issues_of("[defaults]\napps = \"*\"\n"),
            std::vector<std::string>{
                "p.toml:2: defaults.apps: must be an array of app ids, or [\"*\"] (got \"*\")"});
}

TEST(PolicyFile, StructureProblems) {
  EXPECT_EQ(issues_of("defaults = 5\n"),
            std::vector<std::string>{"p.toml:1: defaults: must be a table ([defaults])"});
  EXPECT_EQ(issues_of("groups = [\"staff\"]\n"),
            std::vector<std::string>{"p.toml:1: groups: must be a table ([groups])"});
  EXPECT_EQ(issues_of("[groups]\nstaff = 5\n"),
            std::vector<std::string>{"p.toml:2: groups.staff: must be a table ([groups.staff])"});
  EXPECT_EQ(issues_of("[users.alice.limits]\nmemory_max = \"1G\"\n"),
            std::vector<std::string>{"p.toml:1: users.alice.limits: unknown key"});
}

TEST(PolicyFile, NamesMustBeValidAndDistinct) {
  EXPECT_EQ(issues_of("[groups.Staff]\n[groups.staff]\n"),
            std::vector<std::string>{
                "p.toml:2: groups.staff: differs only in letter case from groups.Staff (names are "
                "matched exactly; use one spelling)"});
  EXPECT_EQ(issues_of("[users.\"bad name\"]\n"),
            std::vector<std::string>{
                "p.toml:1: users.\"bad name\": is not a valid name (1-256 characters of A-Z a-z "
                "0-9 . _ @ $ \\ -, not starting with -)"});
  EXPECT_EQ(issues_of("[users.-alice]\n"),
            std::vector<std::string>{
                "p.toml:1: users.-alice: is not a valid name (1-256 characters of A-Z a-z 0-9 . _ "
                "@ $ \\ -, not starting with -)"});
  // TOML itself refuses a table or key defined twice; the syntax error carries the line.
  auto dup = issues_of("[users.alice]\n\n[users.alice]\n");
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_THAT(dup[0], HasSubstr("p.toml:3: TOML syntax error"));
  auto dup_key = issues_of("[defaults]\ncpu_weight = 1\ncpu_weight = 2\n");
  ASSERT_EQ(dup_key.size(), 1u);
  EXPECT_THAT(dup_key[0], HasSubstr("p.toml:3: TOML syntax error"));
}

TEST(PolicyFile, QuotedNamesAreQuotedInKeys) {
  EXPECT_EQ(issues_of("[users.\"john.doe\"]\ncpu_weight = 0\n"),
            std::vector<std::string>{
                "p.toml:2: users.\"john.doe\".cpu_weight: must be between 1 and 10000 (got 0)"});
  auto r = parse_policy_toml("[users.\"alice@CORP.EXAMPLE\"]\nmax_sessions = 2\n", "p.toml");
  ASSERT_TRUE(r.has_value()) << r.error().report();
  EXPECT_EQ(r->users.at("alice@CORP.EXAMPLE").max_sessions, 2);
}

TEST(PolicyFile, CollectsEveryIssueInLineOrder) {
  auto issues = issues_of(R"([users.zed]
cpu_weight = 0
[defaults]
memory_max = "1X"
colour = "blue"
[groups.a]
network = "nat"
)");
  EXPECT_EQ(issues, (std::vector<std::string>{
                        "p.toml:2: users.zed.cpu_weight: must be between 1 and 10000 (got 0)",
                        "p.toml:4: defaults.memory_max: must be a size such as \"512M\", \"2G\" "
                        "or a byte count, or \"unlimited\" (got \"1X\")",
                        "p.toml:5: defaults.colour: unknown key",
                        "p.toml:7: groups.a.network: must be one of \"none\", \"loopback\", "
                        "\"full\" (got \"nat\")",
                    }));
}

TEST(PolicyFile, SyntaxErrorHasLine) {
  auto issues = issues_of("[defaults]\nmemory_max = \n");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_THAT(issues[0], HasSubstr("p.toml:2: TOML syntax error: "));
}

TEST(PolicyFile, WritesTomlThatReadsBackEqual) {
  auto r = parse_policy_toml(kDocExample, "example.toml");
  ASSERT_TRUE(r.has_value());
  std::string text = policy_set_to_toml(*r);
  auto back = parse_policy_toml(text, "exported.toml");
  ASSERT_TRUE(back.has_value()) << back.error().report() << text;
  EXPECT_EQ(*back, *r) << text;
  EXPECT_THAT(text, HasSubstr("memory_max = '8G'"));  // canonical human-readable values
  EXPECT_THAT(text, HasSubstr("[users.'john.doe']"));
}

TEST(PolicyFile, LoadsFromDiskAndReportsAMissingFile) {
  auto dir =
      std::filesystem::temp_directory_path() / ("policies_test." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "policies.toml";
  { std::ofstream(path) << "[defaults]\nmax_sessions = 0\n"; }
  auto r = load_policy_file(path);
  auto missing = load_policy_file(dir / "absent.toml");
  auto directory = load_policy_file(dir);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().report(),
            path.string() + ":2: defaults.max_sessions: must be between 1 and 1000 (got 0)\n");
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(missing.error().report(), HasSubstr("absent.toml: cannot open: No such file"));
  ASSERT_FALSE(directory.has_value());
  EXPECT_EQ(directory.error().report(), dir.string() + ": cannot read: is a directory\n");
}

}  // namespace
}  // namespace appvirt::policies
