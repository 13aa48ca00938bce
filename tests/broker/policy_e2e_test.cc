// End to end (label e2e, needs root): the policy admin API of the real appvirt-broker over HTTPS,
// with real PAM users and the real appvirt-hostd. A lower memory_max PUT by an admin reaches the
// running container's cgroup (memory.limit_in_bytes on cgroup v1, memory.max on v2); an invalid
// PUT changes nothing (version, launches); a rollback restores the old limit live; non-admins get
// 403; resolve names the rule behind each field; a restart keeps the store's version.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/http_client.h"
#include "tests/broker/broker_fixture.h"
#include "tests/broker/e2e_support.h"
#include "tests/tools/test_support.h"

namespace appvirt::broker::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::testing::eventually;
using appvirt::testing::read_text_file;
using nlohmann::json;

// The memory limit of the user's container cgroup (hostd: appvirt/u-<user>, docs/hostd.md), in
// bytes; "max" (v2) reads as 0; nullopt when there is no such cgroup.
std::optional<uint64_t> container_memory_limit(const std::string& user) {
  for (const char* file : {"/sys/fs/cgroup/memory/appvirt/u-%s/memory.limit_in_bytes",
                           "/sys/fs/cgroup/appvirt/u-%s/memory.max"}) {
    std::string path = file;
    path.replace(path.find("%s"), 2, user);
    if (!fs::exists(path)) continue;
    std::string text = read_text_file(path);
    if (text.rfind("max", 0) == 0) return 0;
    return std::stoull(text);
  }
  return std::nullopt;
}

using Session = WebSession;

class PolicyE2eTest : public BrokerHostdTest {
 protected:
  PolicyE2eTest() : BrokerHostdTest({.dir = "policy-e2e", .prefix = "avp", .bob_is_staff = true}) {}

  void write_broker_config() override {
    std::ofstream(dir_ + "/policies.toml") << "[defaults]\nmemory_max = \"1G\"\n";
    std::ofstream out(dir_ + "/broker.toml");
    out << "state_dir = \"" << dir_ << "/broker\"\n"
        << "policy_file = \"" << dir_ << "/policies.toml\"\n"
        << "gateway_address = \"127.0.0.1:3389\"\n"
        << "pam_service = \"" << pam_->name() << "\"\n"
        << "admin_group = \"" << admins_->name() << "\"\n"
        << "log_level = \"debug\"\n"
        << "[listen]\naddress = \"127.0.0.1\"\nport = 0\n"
        << "[internal]\nhost_poll_interval_ms = 1000\n"
        << "[[hosts]]\nname = \"local\"\nsocket = \"" << sock_ << "\"\ncapacity = 4\n"
        << "[[apps]]\nid = \"pattern\"\nname = \"Test pattern\"\n"
        << "command = [\"/bin/sh\", \"-c\", \"exec \\\"$HOME/appvirt-testpattern\\\" --variant 0\"]\n"
        << "groups = [\"" << staff_->name() << "\"]\n";
  }

  Reply call(const Session& s, const std::string& method, const std::string& target,
             const std::string& body = "") {
    return must(https(port_, method, target, body, as(s, method != "GET")));
  }

  json policy_in_force(const Session& admin) {
    Reply r = call(admin, "GET", "/api/v1/admin/policies");
    EXPECT_EQ(r.status, 200u) << r.body;
    return json::parse(r.body, nullptr, false);
  }

  // Launches the pattern app and returns the session id hostd runs it as.
  std::string launch(const Session& s) {
    Reply r = call(s, "POST", "/api/v1/apps/pattern/launch");
    EXPECT_EQ(r.status, 200u) << r.body << broker_log();
    return r.header("x-appvirt-session-id");
  }

  json hostd_session(const std::string& id) {
    auto r = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions/" + id, "", 5s);
    if (!r || r->status != 200) return json::object();
    return json::parse(r->body, nullptr, false);
  }
};

constexpr uint64_t kMiB = 1ull << 20;

TEST_F(PolicyE2eTest, AdminChangesReachRunningContainersLive) {
  Session ada = login(*ada_);
  Session alice = login(*alice_);
  json v1 = policy_in_force(ada);
  EXPECT_EQ(v1["version"], 1);
  EXPECT_EQ(v1["author"], "file:" + dir_ + "/policies.toml");
  EXPECT_EQ(v1["policy"]["defaults"]["memory_max"], "1G");

  std::string id = launch(alice);
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(container_memory_limit(alice_->name()), 1024 * kMiB) << "the policy file's limit";

  // Non-admins may neither read nor change policies.
  EXPECT_EQ(call(alice, "GET", "/api/v1/admin/policies").status, 403u);
  EXPECT_EQ(call(alice, "PUT", "/api/v1/admin/policies", R"({"defaults":{}})").status, 403u);
  EXPECT_EQ(call(alice, "POST", "/api/v1/admin/policies/rollback", R"({"version":1})").status, 403u);
  EXPECT_EQ(call(alice, "GET", "/api/v1/admin/policies/resolve?user=" + alice_->name()).status, 403u);

  // An invalid PUT: every error listed, version 1 stays in force, launches keep its limits.
  Reply bad = call(ada, "PUT", "/api/v1/admin/policies",
                   R"({"defaults":{"memory_max":"8M","clipboard":"out"}})");
  ASSERT_EQ(bad.status, 400u) << bad.body;
  json errors = json::parse(bad.body)["errors"];
  EXPECT_EQ(errors.size(), 2u) << bad.body;
  EXPECT_EQ(policy_in_force(ada)["version"], 1);
  Session bob = login(*bob_);
  std::string bob_id = launch(bob);
  EXPECT_EQ(hostd_session(bob_id)["limits"].value("memory_max", 0ull), 1024 * kMiB);
  EXPECT_EQ(container_memory_limit(bob_->name()), 1024 * kMiB);
  EXPECT_EQ(container_memory_limit(alice_->name()), 1024 * kMiB);

  // A lower limit for the staff group reaches both running containers.
  std::string change = json{{"policy", {{"defaults", {{"memory_max", "1G"}}},
                                        {"groups", {{staff_->name(), {{"memory_max", "384M"}}}}}}},
                            {"comment", "staff gets less"}}.dump();
  Reply put = call(ada, "PUT", "/api/v1/admin/policies", change);
  ASSERT_EQ(put.status, 200u) << put.body << broker_log();
  EXPECT_EQ(json::parse(put.body)["version"], 2);
  EXPECT_TRUE(eventually([&] { return container_memory_limit(alice_->name()) == 384 * kMiB; }))
      << "alice's cgroup: " << container_memory_limit(alice_->name()).value_or(1) << "\n"
      << broker_log();
  EXPECT_EQ(container_memory_limit(bob_->name()), 384 * kMiB);
  EXPECT_EQ(hostd_session(id).value("state", ""), "running") << "the session kept running";

  Reply resolved = call(ada, "GET", "/api/v1/admin/policies/resolve?user=" + alice_->name());
  ASSERT_EQ(resolved.status, 200u) << resolved.body;
  json r = json::parse(resolved.body);
  EXPECT_EQ(r["effective"]["memory_max"], "384M");
  EXPECT_EQ(r["sources"]["memory_max"], "group:" + staff_->name());
  EXPECT_EQ(r["sources"]["cpu_weight"], "default");
  EXPECT_EQ(call(ada, "GET", "/api/v1/admin/policies/resolve?user=nosuchuser" + random_suffix()).status,
            404u);

  // Rollback to version 1: a new version 3, and the containers get 1G again.
  Reply back = call(ada, "POST", "/api/v1/admin/policies/rollback", R"({"version":1})");
  ASSERT_EQ(back.status, 200u) << back.body;
  EXPECT_EQ(json::parse(back.body)["version"], 3);
  EXPECT_TRUE(eventually([&] { return container_memory_limit(alice_->name()) == 1024 * kMiB; }));
  EXPECT_EQ(call(ada, "POST", "/api/v1/admin/policies/rollback", R"({"version":9})").status, 404u);

  Reply history = call(ada, "GET", "/api/v1/admin/policies/history");
  ASSERT_EQ(history.status, 200u);
  json versions = json::parse(history.body)["versions"];
  ASSERT_EQ(versions.size(), 3u) << history.body;
  EXPECT_EQ(versions[0]["version"], 3);
  EXPECT_EQ(versions[1]["comment"], "staff gets less");
  EXPECT_EQ(versions[1]["author"], "admin:" + ada_->name());

  Reply audit = call(ada, "GET", "/api/v1/admin/audit");
  EXPECT_NE(audit.body.find("\"policy_update\""), std::string::npos);
  EXPECT_NE(audit.body.find("\"policy_rollback\""), std::string::npos);
  EXPECT_NE(audit.body.find("\"policy_rejected\""), std::string::npos);

  // The store is the source of truth: a restart with the unchanged file keeps version 3.
  restart_broker();
  ada = login(*ada_);
  EXPECT_EQ(policy_in_force(ada)["version"], 3);
}

}  // namespace
}  // namespace appvirt::broker::e2e
