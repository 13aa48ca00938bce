// Precedence: user over groups (by priority; ties met) over [defaults] over built-in, field by
// field, with the rule that set each field.
#include <gtest/gtest.h>

#include "policies/policy_file.h"
#include "policies/resolver.h"
#include "tests/policies/doc_example.h"

namespace appvirt::policies {
namespace {

using std::chrono::seconds;

PolicySet parse(std::string_view text) {
  auto r = parse_policy_toml(text, "t.toml");
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().report());
  return r ? *r : PolicySet{};
}

TEST(Resolver, NoRulesGivesBuiltinDefaults) {
  Resolution r = resolve(PolicySet{}, "alice", {"staff"});
  EXPECT_EQ(r.policy, builtin_defaults());
  EXPECT_TRUE(r.groups.empty());
  for (size_t i = 0; i < kFieldCount; ++i) EXPECT_EQ(r.sources[i], "builtin") << i;
}

TEST(Resolver, UserOverGroupOverDefaultsOverBuiltin) {
  PolicySet s = parse(R"([defaults]
memory_max = "1G"
pids_max = 256
cpu_weight = 50
[groups.staff]
memory_max = "2G"
pids_max = 1024
[users.alice]
memory_max = "4G"
)");
  Resolution r = resolve(s, "alice", {"staff"});
  EXPECT_EQ(r.policy.memory_max, Limit::of(4ull << 30));
  EXPECT_EQ(r.source(Field::memory_max), "users.alice");
  EXPECT_EQ(r.policy.pids_max, Limit::of(1024));
  EXPECT_EQ(r.source(Field::pids_max), "groups.staff");
  EXPECT_EQ(r.policy.cpu_weight, 50);
  EXPECT_EQ(r.source(Field::cpu_weight), "defaults");
  EXPECT_EQ(r.policy.max_sessions, builtin_defaults().max_sessions);
  EXPECT_EQ(r.source(Field::max_sessions), "builtin");

  Resolution bob = resolve(s, "bob", {"staff"});
  EXPECT_EQ(bob.policy.memory_max, Limit::of(2ull << 30));
  EXPECT_EQ(bob.source(Field::memory_max), "groups.staff");

  Resolution carol = resolve(s, "carol", {"other"});
  EXPECT_EQ(carol.policy.memory_max, Limit::of(1ull << 30));
  EXPECT_EQ(carol.source(Field::memory_max), "defaults");
  EXPECT_TRUE(carol.groups.empty());
}

TEST(Resolver, UserRuleMayLoosenWhatAGroupRestricts) {
  PolicySet s = parse(R"([groups.contractors]
priority = 100
clipboard = "none"
[users.alice]
clipboard = "both"
)");
  Resolution r = resolve(s, "alice", {"contractors"});
  EXPECT_EQ(r.policy.clipboard, Clipboard::both);
  EXPECT_EQ(r.source(Field::clipboard), "users.alice");
}

TEST(Resolver, HigherPriorityGroupWinsPerField) {
  PolicySet s = parse(R"([groups.staff]
priority = 10
memory_max = "2G"
idle_timeout = "8h"
[groups.contractors]
priority = 20
memory_max = "512M"
)");
  Resolution r = resolve(s, "bob", {"staff", "contractors"});
  EXPECT_EQ(r.policy.memory_max, Limit::of(512ull << 20));
  EXPECT_EQ(r.source(Field::memory_max), "groups.contractors");
  // contractors does not set idle_timeout: it does not hide the lower-priority staff rule.
  EXPECT_EQ(r.policy.idle_timeout, seconds{8 * 3600});
  EXPECT_EQ(r.source(Field::idle_timeout), "groups.staff");
  EXPECT_EQ(r.groups, (std::vector<std::string>{"contractors", "staff"}));
}

TEST(Resolver, HigherPriorityWinsEvenWhenLessRestrictive) {
  PolicySet s = parse(R"([groups.admins]
priority = 50
memory_max = "8G"
[groups.staff]
priority = 10
memory_max = "1G"
)");
  Resolution r = resolve(s, "root-ish", {"staff", "admins"});
  EXPECT_EQ(r.policy.memory_max, Limit::of(8ull << 30));
  EXPECT_EQ(r.source(Field::memory_max), "groups.admins");
}

TEST(Resolver, TiedGroupsGiveTheMostRestrictiveValue) {
  PolicySet s = parse(R"([groups.a]
memory_max = "2G"
isolation = "container"
idle_timeout = 0
network = "full"
[groups.b]
memory_max = "1G"
isolation = "vm"
idle_timeout = "4h"
network = "loopback"
)");
  Resolution r = resolve(s, "u", {"a", "b"});
  EXPECT_EQ(r.policy.memory_max, Limit::of(1ull << 30));
  EXPECT_EQ(r.source(Field::memory_max), "groups.b");
  EXPECT_EQ(r.policy.isolation, Isolation::vm);
  EXPECT_EQ(r.source(Field::isolation), "groups.b");
  EXPECT_EQ(r.policy.idle_timeout, seconds{4 * 3600});  // 0 = never is the loosest
  EXPECT_EQ(r.source(Field::idle_timeout), "groups.b");
  EXPECT_EQ(r.policy.network, Network::loopback);
  // The order the groups come in does not matter.
  Resolution again = resolve(s, "u", {"b", "a", "b"});
  EXPECT_EQ(again.policy, r.policy);
  EXPECT_EQ(again.sources, r.sources);
}

TEST(Resolver, TiedEqualValuesNameTheFirstGroupByName) {
  PolicySet s = parse("[groups.zeta]\npids_max = 100\n[groups.alpha]\npids_max = 100\n");
  Resolution r = resolve(s, "u", {"zeta", "alpha"});
  EXPECT_EQ(r.policy.pids_max, Limit::of(100));
  EXPECT_EQ(r.source(Field::pids_max), "groups.alpha");
}

TEST(Resolver, TiedGroupsCanCombineIntoAValueNeitherSet) {
  PolicySet s = parse(R"([groups.a]
priority = 5
apps = ["xterm", "gedit"]
clipboard = "to-client"
max_resolution = "1920x1080"
[groups.b]
priority = 5
apps = ["gedit", "firefox"]
clipboard = "to-server"
max_resolution = "1280x1440"
[groups.c]
priority = 5
apps = ["*"]
)");
  Resolution r = resolve(s, "u", {"a", "b", "c"});
  EXPECT_EQ(r.policy.apps, (AppList{false, {"gedit"}}));
  EXPECT_EQ(r.source(Field::apps), "groups.a & groups.b");  // "*" (groups.c) restricts nothing
  EXPECT_EQ(r.policy.clipboard, Clipboard::none);
  EXPECT_EQ(r.source(Field::clipboard), "groups.a & groups.b");
  EXPECT_EQ(r.policy.max_resolution, (ScreenSize{1280, 1080}));
  EXPECT_EQ(r.source(Field::max_resolution), "groups.a & groups.b");
}

TEST(Resolver, OnlyTheTopPriorityThatSetsAFieldIsMet) {
  PolicySet s = parse(R"([groups.high]
priority = 9
drive_redirection = true
[groups.high2]
priority = 9
[groups.low]
priority = 1
drive_redirection = false
)");
  Resolution r = resolve(s, "u", {"low", "high", "high2"});
  EXPECT_TRUE(r.policy.drive_redirection);
  EXPECT_EQ(r.source(Field::drive_redirection), "groups.high");
  EXPECT_EQ(r.groups, (std::vector<std::string>{"high", "high2", "low"}));
}

TEST(Resolver, NegativePrioritySortsBelowZero) {
  PolicySet s = parse(R"([groups.everyone]
priority = -1
max_sessions = 2
[groups.staff]
max_sessions = 8
)");
  Resolution r = resolve(s, "u", {"everyone", "staff"});
  EXPECT_EQ(r.policy.max_sessions, 8);
  EXPECT_EQ(r.source(Field::max_sessions), "groups.staff");
}

TEST(Resolver, RulesOfOtherUsersAndGroupsDoNotApply) {
  PolicySet s = parse("[users.alice]\nmax_sessions = 1\n[groups.staff]\nmax_sessions = 2\n");
  Resolution r = resolve(s, "alicex", {"staffers"});
  EXPECT_EQ(r.policy.max_sessions, builtin_defaults().max_sessions);
  EXPECT_EQ(r.source(Field::max_sessions), "builtin");
}

TEST(Resolver, QuotedNamesInSources) {
  // "domain users@corp" holds a space: not a valid name, so such a file is refused.
  EXPECT_FALSE(parse_policy_toml("[groups.\"domain users@corp\"]\n", "t.toml").has_value());
  PolicySet s;
  s = parse("[users.\"john.doe\"]\nmax_sessions = 1\n[groups.\"staff@corp\"]\npids_max = 64\n");
  Resolution r = resolve(s, "john.doe", {"staff@corp"});
  EXPECT_EQ(r.source(Field::max_sessions), "users.\"john.doe\"");
  EXPECT_EQ(r.source(Field::pids_max), "groups.\"staff@corp\"");
}

// What docs/policies.md says about its example.
TEST(Resolver, DocumentedExample) {
  PolicySet s = parse(test_data::kDocExample);
  Resolution bob = resolve(s, "bob", {"staff", "developers", "contractors"});
  EXPECT_EQ(bob.groups, (std::vector<std::string>{"contractors", "developers", "staff"}));
  EXPECT_EQ(bob.policy.apps, (AppList{false, {"firefox", "xterm"}}));
  EXPECT_EQ(bob.source(Field::apps), "groups.contractors");
  EXPECT_EQ(bob.source(Field::clipboard), "groups.contractors");
  EXPECT_EQ(bob.source(Field::idle_timeout), "groups.contractors");
  EXPECT_EQ(bob.policy.memory_max, Limit::of(4ull << 30));
  EXPECT_EQ(bob.source(Field::memory_max), "groups.developers");
  EXPECT_EQ(bob.policy.cpu_max, Limit::of(400));
  EXPECT_TRUE(bob.policy.drive_redirection);
  EXPECT_EQ(bob.source(Field::drive_redirection), "groups.staff");
  EXPECT_EQ(bob.source(Field::pids_max), "defaults");

  // Without developers' priority it ties with staff at 0: the meet, 2G from staff.
  s.groups.at("developers").priority = 0;
  Resolution tied = resolve(s, "bob", {"staff", "developers", "contractors"});
  EXPECT_EQ(tied.policy.memory_max, Limit::of(2ull << 30));
  EXPECT_EQ(tied.source(Field::memory_max), "groups.staff");

  Resolution alice = resolve(s, "alice", {"staff", "developers"});
  EXPECT_EQ(alice.policy.memory_max, Limit::of(8ull << 30));
  EXPECT_EQ(alice.source(Field::memory_max), "users.alice");
  EXPECT_EQ(alice.policy.isolation, Isolation::vm);
}

TEST(EffectivePolicy, ClampsResolutionAndReadsClipboard) {
  EffectivePolicy p;
  p.max_resolution = {1920, 1080};
  EXPECT_EQ(p.clamp({2560, 1440}), (ScreenSize{1920, 1080}));
  EXPECT_EQ(p.clamp({1024, 1440}), (ScreenSize{1024, 1080}));
  p.clipboard = Clipboard::to_client;
  EXPECT_TRUE(p.clipboard_to_client());
  EXPECT_FALSE(p.clipboard_to_server());
}

}  // namespace
}  // namespace appvirt::policies
