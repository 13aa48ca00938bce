// The admin API's JSON form: round trip, the same checks as the file with JSON paths, the
// resolution view, and the hostd container limits mapping.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policies/container_limits.h"
#include "policies/policy_file.h"
#include "policies/policy_json.h"

namespace appvirt::policies {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using ::testing::HasSubstr;

PolicySet sample_set() {
  PolicySet s;
  s.defaults.memory_max = Limit::of(1ull << 30);
  s.defaults.idle_timeout = seconds{5400};
  s.defaults.apps = AppList::everything();
  s.defaults.cpu_max = Limit::unlimited();
  s.groups["staff"].priority = 10;
  s.groups["staff"].rule.apps = AppList{false, {"xterm", "gedit"}};
  s.groups["staff"].rule.clipboard = Clipboard::to_client;
  s.groups["empty"] = GroupRule{};
  s.users["alice"].isolation = Isolation::vm;
  s.users["alice"].max_resolution = ScreenSize{2560, 1440};
  s.users["alice"].drive_redirection = true;
  s.users["alice"].pids_max = Limit::of(1024);
  s.users["alice"].network = Network::full;
  s.users["alice"].disconnect_timeout = seconds{0};
  s.users["alice"].cpu_weight = 300;
  s.users["alice"].max_sessions = 3;
  s.users["j.doe"] = Rule{};
  return s;
}

std::vector<std::string> json_issues(const json& j) {
  auto r = policy_set_from_json(j);
  EXPECT_FALSE(r.has_value());
  std::vector<std::string> out;
  if (!r) {
    for (const auto& i : r.error().items) out.push_back(i.str());
  }
  return out;
}

TEST(PolicyJson, RoundTripsEveryField) {
  PolicySet s = sample_set();
  json j = policy_set_to_json(s);
  auto back = policy_set_from_json(j);
  ASSERT_TRUE(back.has_value()) << back.error().report() << j.dump(2);
  EXPECT_EQ(*back, s) << j.dump(2);
  // Through text, as the admin API sees it.
  auto from_text = policy_set_from_json_text(j.dump());
  ASSERT_TRUE(from_text.has_value());
  EXPECT_EQ(*from_text, s);
}

TEST(PolicyJson, WritesCanonicalValues) {
  json j = policy_set_to_json(sample_set());
  EXPECT_EQ(j["defaults"]["memory_max"], "1G");
  EXPECT_EQ(j["defaults"]["idle_timeout"], "1h30m");
  EXPECT_EQ(j["defaults"]["cpu_max"], "unlimited");
  EXPECT_EQ(j["defaults"]["apps"], json::array({"*"}));
  EXPECT_EQ(j["groups"]["staff"]["apps"], json::array({"gedit", "xterm"}));
  EXPECT_EQ(j["groups"]["staff"]["priority"], 10);
  EXPECT_EQ(j["groups"]["empty"], json({{"priority", 0}}));
  EXPECT_EQ(j["users"]["alice"]["max_resolution"], "2560x1440");
  EXPECT_EQ(j["users"]["alice"]["disconnect_timeout"], "never");
  EXPECT_EQ(j["users"]["alice"]["pids_max"], 1024);
  EXPECT_EQ(j["users"]["j.doe"], json::object());
  EXPECT_FALSE(j["defaults"].contains("isolation"));  // unset fields are left out
}

TEST(PolicyJson, FileAndJsonGiveTheSameSet) {
  auto from_file = parse_policy_toml(
      "[defaults]\nmemory_max = \"1G\"\n[groups.staff]\npriority = 3\nclipboard = \"none\"\n"
      "[users.alice]\nidle_timeout = 600\n",
      "p.toml");
  auto from_json = policy_set_from_json(json::parse(
      R"({"defaults":{"memory_max":1073741824},"groups":{"staff":{"priority":3,"clipboard":"none"}},
          "users":{"alice":{"idle_timeout":"10m"}}})"));
  ASSERT_TRUE(from_file.has_value());
  ASSERT_TRUE(from_json.has_value());
  EXPECT_EQ(*from_file, *from_json);
}

TEST(PolicyJson, ErrorsNameTheJsonPath) {
  EXPECT_EQ(
      json_issues({{"groups", {{"staff", {{"memory_max", "8M"}}}}}}),
      std::vector<std::string>{"groups.staff.memory_max: must be between 16M and 1T (got \"8M\")"});
  EXPECT_EQ(
      json_issues({{"users", {{"a.b", {{"cpu_weight", 0}}}}}}),
      std::vector<std::string>{"users.\"a.b\".cpu_weight: must be between 1 and 10000 (got 0)"});
  EXPECT_EQ(json_issues({{"defaults", {{"colour", "blue"}}}}),
            std::vector<std::string>{"defaults.colour: unknown key"});
  EXPECT_EQ(
      json_issues({{"defaults", {{"max_session", 2}}}}),
      std::vector<std::string>{"defaults.max_session: unknown key (did you mean max_sessions?)"});
  EXPECT_EQ(json_issues({{"users", {{"alice", {{"priority", 1}}}}}}),
            std::vector<std::string>{
                "users.alice.priority: unknown key (priority is only for [groups.NAME])"});
  EXPECT_EQ(json_issues({{"version", 1}}),
            std::vector<std::string>{"version: unknown key (expected defaults, groups or users)"});
}

TEST(PolicyJson, StructureErrors) {
  EXPECT_EQ(json_issues(json::array()),
            std::vector<std::string>{
                "the policy set must be a JSON object {\"defaults\",\"groups\",\"users\"}"});
  EXPECT_EQ(json_issues({{"groups", json::array()}}),
            std::vector<std::string>{"groups: must be an object"});
  EXPECT_EQ(json_issues({{"users", {{"alice", 5}}}}),
            std::vector<std::string>{"users.alice: must be an object"});
  EXPECT_EQ(json_issues({{"users", {{"alice", nullptr}}}}),
            std::vector<std::string>{
                "users.alice: must be an object (omit the name to delete the rule)"});
  EXPECT_EQ(json_issues({{"groups", {{"Staff", json::object()}, {"staff", json::object()}}}}),
            std::vector<std::string>{"groups.staff: differs only in letter case from "
                                     "groups.Staff (names are matched exactly; use one spelling)"});
  auto bad_text = policy_set_from_json_text("{\"defaults\": ");
  ASSERT_FALSE(bad_text.has_value());
  EXPECT_EQ(bad_text.error().report(), "JSON syntax error\n");
}

TEST(PolicyJson, NullMeansNotSet) {
  auto r = policy_set_from_json(
      json::parse(R"({"defaults":{"memory_max":null,"cpu_weight":5},"groups":null})"));
  ASSERT_TRUE(r.has_value()) << r.error().report();
  EXPECT_EQ(r->defaults.memory_max, std::nullopt);
  EXPECT_EQ(r->defaults.cpu_weight, 5);
  EXPECT_TRUE(r->groups.empty());
}

TEST(PolicyJson, CollectsAllIssuesAsJson) {
  auto r = policy_set_from_json(
      json::parse(R"({"defaults":{"cpu_weight":0,"clipboard":"out"},"users":{"bad name":{}}})"));
  ASSERT_FALSE(r.has_value());
  json issues = issues_to_json(r.error());
  ASSERT_EQ(issues.size(), 3u) << issues.dump();
  EXPECT_EQ(issues[0]["path"], "defaults.clipboard");
  EXPECT_EQ(issues[1]["path"], "defaults.cpu_weight");
  EXPECT_EQ(issues[2]["path"], "users.\"bad name\"");
  EXPECT_FALSE(issues[0].contains("line"));
  EXPECT_THAT(issues[1]["message"].get<std::string>(), HasSubstr("between 1 and 10000"));
}

TEST(PolicyJson, LongNonAsciiValuesAreCutCleanly) {
  // 36 ASCII bytes then multi-byte characters: the cut must not split one, or the reply's dump()
  // would throw.
  std::string value = std::string(35, 'a') + "\u00e9\u00e9\u00e9\u00e9";
  auto r = policy_set_from_json(json{{"defaults", {{"clipboard", value}}}});
  ASSERT_FALSE(r.has_value());
  std::string dumped;
  EXPECT_NO_THROW(dumped = issues_to_json(r.error()).dump());
  EXPECT_THAT(dumped, HasSubstr("aaa...)"));
}

TEST(PolicyJson, FileIssuesCarryTheirLine) {
  auto r = parse_policy_toml("\n[defaults]\ncpu_weight = 0\n", "p.toml");
  ASSERT_FALSE(r.has_value());
  json issues = issues_to_json(r.error());
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0], json({{"path", "defaults.cpu_weight"},
                             {"message", "must be between 1 and 10000 (got 0)"},
                             {"line", 3}}));
}

TEST(PolicyJson, EffectivePolicyListsEveryField) {
  json j = effective_to_json(builtin_defaults());
  EXPECT_EQ(j, json::parse(R"({
    "isolation":"container","cpu_weight":100,"cpu_max":"unlimited","memory_max":"unlimited",
    "pids_max":"unlimited","max_sessions":10,"idle_timeout":"never","disconnect_timeout":"1h",
    "apps":["*"],"clipboard":"both","drive_redirection":false,"network":"loopback",
    "max_resolution":"3840x2160","overflow_to_vm":false})"));
}

TEST(PolicyJson, ResolutionShowsValuesAndSources) {
  PolicySet s = sample_set();
  json j = resolution_to_json(resolve(s, "alice", {"staff", "users"}));
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["groups"], json::array({"staff"}));
  EXPECT_EQ(j["policy"]["isolation"], "vm");
  EXPECT_EQ(j["sources"]["isolation"], "users.alice");
  EXPECT_EQ(j["policy"]["apps"], json::array({"gedit", "xterm"}));
  EXPECT_EQ(j["sources"]["apps"], "groups.staff");
  EXPECT_EQ(j["policy"]["memory_max"], "1G");
  EXPECT_EQ(j["sources"]["memory_max"], "defaults");
  EXPECT_EQ(j["sources"]["clipboard"], "groups.staff");
  EXPECT_EQ(j["sources"].size(), kFieldCount);
  EXPECT_EQ(j["policy"].size(), kFieldCount);
}

TEST(ContainerLimits, MapsTheResolvedPolicyForHostd) {
  EffectivePolicy p;
  p.memory_max = Limit::of(512ull << 20);
  p.cpu_weight = 250;
  p.cpu_max = Limit::of(200);
  p.pids_max = Limit::of(512);
  EXPECT_EQ(container_limits_json(p),
            json::parse(R"({"memory_max":536870912,"cpu_weight":250,"cpu_max_percent":200,
                            "pids_max":512})"));
  // Unlimited fields are left out: hostd then applies its configured host defaults.
  EXPECT_EQ(container_limits_json(builtin_defaults()), json({{"cpu_weight", 100}}));
}

}  // namespace
}  // namespace appvirt::policies
