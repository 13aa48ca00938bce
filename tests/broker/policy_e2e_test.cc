// End to end (label e2e, needs root): the policy admin API of the real appvirt-broker over HTTPS,
// with real PAM users and the real appvirt-hostd. A lower memory_max PUT by an admin reaches the
// running container's cgroup (memory.limit_in_bytes on cgroup v1, memory.max on v2); an invalid
// PUT changes nothing (version, launches); a rollback restores the old limit live; non-admins get
// 403; resolve names the rule behind each field; a restart keeps the store's version.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/http_client.h"
#include "tests/broker/e2e_support.h"
#include "tests/tools/test_support.h"

namespace appvirt::broker::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::testing::Child;
using nlohmann::json;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 15s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// The memory limit of the user's container cgroup (hostd: appvirt/u-<user>, docs/hostd.md), in
// bytes; "max" (v2) reads as 0; nullopt when there is no such cgroup.
std::optional<uint64_t> container_memory_limit(const std::string& user) {
  for (const char* file : {"/sys/fs/cgroup/memory/appvirt/u-%s/memory.limit_in_bytes",
                           "/sys/fs/cgroup/appvirt/u-%s/memory.max"}) {
    std::string path = file;
    path.replace(path.find("%s"), 2, user);
    if (!fs::exists(path)) continue;
    std::string text = read_text(path);
    if (text.rfind("max", 0) == 0) return 0;
    return std::stoull(text);
  }
  return std::nullopt;
}

struct Session {
  std::string cookie;
  std::string csrf;
};

class PolicyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "this e2e test needs root (users, PAM, hostd)";
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char tmpl[] = "/tmp/policy-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    pam_ = std::make_unique<TempPamService>(APPVIRT_PAM_FILE);
    ASSERT_TRUE(pam_->ok());
    staff_ = std::make_unique<TempGroup>("avps");
    admins_ = std::make_unique<TempGroup>("avpadm");
    ASSERT_TRUE(staff_->ok() && admins_->ok());
    alice_ = std::make_unique<TempUser>("avpa", std::vector<std::string>{staff_->name()});
    bob_ = std::make_unique<TempUser>("avpb", std::vector<std::string>{staff_->name()});
    ada_ = std::make_unique<TempUser>("avpc", std::vector<std::string>{admins_->name()});
    ASSERT_TRUE(alice_->ok() && bob_->ok() && ada_->ok());
    for (TempUser* u : {alice_.get(), bob_.get()}) install_app(*u);
    write_configs();
    start_hostd();
    start_broker();
  }

  void TearDown() override {
    if (broker_.running()) {
      ::kill(broker_.pid(), SIGTERM);
      (void)broker_.wait_exit(10s);
    }
    std::set<std::string> ids;
    if (hostd_.running()) {
      auto list = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions", "", 10s);
      if (list && list->status == 200) {
        json parsed = json::parse(list->body, nullptr, false);
        if (parsed.is_object()) {
          for (const auto& s : parsed["sessions"]) ids.insert(s["session_id"]);
        }
      }
      hostd_.terminate(10s);  // --terminate-sessions-on-exit: ends every session
    }
    std::vector<TempUser*> users = {alice_.get(), bob_.get(), ada_.get()};
    for (TempUser* u : users) {
      if (!u || !u->ok()) continue;
      for (pid_t p : pids_of_uid(u->uid())) ::kill(p, SIGKILL);
    }
    eventually([&] {
      reap_orphans();
      for (TempUser* u : users) {
        if (u && u->ok() && !pids_of_uid(u->uid()).empty()) return false;
      }
      return true;
    }, 5s);
    for (TempUser* u : users) {
      if (u) remove_cgroup("appvirt/u-" + u->name());
    }
    for (const auto& id : ids) remove_cgroup("appvirt/rdp/s-" + id);
    alice_.reset();
    bob_.reset();
    ada_.reset();
    staff_.reset();
    admins_.reset();
    pam_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void install_app(const TempUser& u) {
    std::string app = u.home() + "/appvirt-testpattern";
    fs::copy_file(APPVIRT_TESTPATTERN, app, fs::copy_options::overwrite_existing);
    struct stat st {};
    ::stat(u.home().c_str(), &st);
    ::chown(app.c_str(), st.st_uid, st.st_gid);
    ::chmod(app.c_str(), 0755);
  }

  void write_configs() {
    sock_ = dir_ + "/run/hostd.sock";
    std::ofstream(dir_ + "/hostd.toml") << "state_dir = \"" << dir_ << "/hostd\"\n"
                                        << "runtime_dir = \"" << dir_ << "/run\"\n"
                                        << "[paths]\n"
                                        << "sandbox = \"" << APPVIRT_SANDBOX << "\"\n"
                                        << "rdp = \"" << APPVIRT_RDP << "\"\n";
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

  void start_hostd() {
    appvirt::testing::SpawnOptions o;
    o.stderr_file = dir_ + "/hostd.log";
    auto c = Child::spawn({APPVIRT_HOSTD, "--config", dir_ + "/hostd.toml",
                           "--terminate-sessions-on-exit"}, o);
    ASSERT_TRUE(c) << c.error().str();
    hostd_ = std::move(*c);
    ASSERT_TRUE(eventually([&] {
      auto r = http::unix_request(sock_, http::bhttp::verb::get, "/v1/health", "", 2s);
      return r && r->status == 200;
    })) << read_text(o.stderr_file);
  }

  void start_broker() {
    appvirt::testing::SpawnOptions o;
    o.stderr_file = dir_ + "/broker.log." + std::to_string(++broker_runs_);
    std::string port_file = dir_ + "/broker.port";
    fs::remove(port_file);
    auto c = Child::spawn({APPVIRT_BROKER, "--config", dir_ + "/broker.toml", "--port-file", port_file}, o);
    ASSERT_TRUE(c) << c.error().str();
    broker_ = std::move(*c);
    ASSERT_TRUE(eventually([&] { return fs::exists(port_file); })) << read_text(o.stderr_file);
    port_ = static_cast<uint16_t>(std::stoi(read_text(port_file)));
    ASSERT_TRUE(eventually([&] {
      auto r = https(port_, "GET", "/healthz");
      return r && r->status == 200 && json::parse(r->body)["hosts_up"] == 1;
    })) << read_text(o.stderr_file);
  }

  void restart_broker() {
    ::kill(broker_.pid(), SIGTERM);
    auto code = broker_.wait_exit(10s);
    ASSERT_TRUE(code) << "broker did not stop within 10 s of SIGTERM";
    start_broker();
  }

  std::string broker_log() const {
    return read_text(dir_ + "/broker.log." + std::to_string(broker_runs_));
  }

  Reply must(Result<Reply> r) {
    EXPECT_TRUE(r) << (r ? "" : r.error().str());
    return r ? *r : Reply{};
  }

  Session login(const TempUser& u) {
    Reply r = must(https(port_, "POST", "/api/v1/login",
                         json{{"username", u.name()}, {"password", u.password()}}.dump()));
    EXPECT_EQ(r.status, 200u) << r.body;
    std::string set = r.header("set-cookie");
    std::string prefix = "__Host-appvirt_session=";
    Session s;
    if (set.rfind(prefix, 0) == 0) s.cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
    s.csrf = json::parse(r.body, nullptr, false).value("csrf_token", "");
    return s;
  }

  Options as(const Session& s, bool csrf = true) {
    Options o;
    o.headers["Cookie"] = "__Host-appvirt_session=" + s.cookie;
    if (csrf) o.headers["X-CSRF-Token"] = s.csrf;
    return o;
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

  std::string dir_, sock_;
  uint16_t port_ = 0;
  int broker_runs_ = 0;
  Child hostd_, broker_;
  std::unique_ptr<TempPamService> pam_;
  std::unique_ptr<TempGroup> staff_, admins_;
  std::unique_ptr<TempUser> alice_, bob_, ada_;
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
