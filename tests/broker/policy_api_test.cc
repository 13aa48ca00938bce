// Unit tests of policy versions: the SQLite policy_versions table, PolicyStore (import of
// policy_file at first start and when its content changes, commits, rollbacks) and the admin API
// routes (/api/v1/admin/policies...) through the real router, service and store, with fakes for
// PAM, NSS and the host. The live push is checked on the fake host's recorded limit changes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "broker/api.h"
#include "broker/policy_store.h"
#include "broker/sqlite_store.h"
#include "tests/broker/fakes.h"

namespace appvirt::broker {
namespace {

namespace fs = std::filesystem;
namespace bhttp = boost::beast::http;
using nlohmann::json;

class TempDirectory {
 public:
  TempDirectory() {
    char tmpl[] = "/tmp/broker-policy-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDirectory() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// --- PolicyStore and the policy_versions table -------------------------------------------------

class PolicyStoreTest : public ::testing::Test {
 protected:
  PolicyStoreTest() { reopen_db(); }
  void reopen_db() {
    db_.reset();
    auto s = SqliteStore::open(dir_.path() + "/broker.db");
    ASSERT_TRUE(s) << s.error().str();
    db_ = std::move(*s);
  }
  Result<std::unique_ptr<PolicyStore>> open(const std::string& file) {
    return PolicyStore::open(*db_, file, [this] { return now_ms_; });
  }
  std::string file() const { return dir_.path() + "/policies.toml"; }

  TempDirectory dir_;
  std::unique_ptr<SqliteStore> db_;
  int64_t now_ms_ = 1'700'000'000'000;
};

TEST_F(PolicyStoreTest, WithoutFileVersionOneHoldsBuiltinDefaults) {
  auto ps = open("");
  ASSERT_TRUE(ps) << ps.error().str();
  EXPECT_EQ((*ps)->current_version().version, 1);
  EXPECT_EQ((*ps)->current_version().author, "builtin");
  EXPECT_EQ((*ps)->current(), policies::PolicySet{});
  // A second start adds nothing.
  auto again = open("");
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->current_version().version, 1);
  EXPECT_EQ((*again)->history(10)->size(), 1u);
}

TEST_F(PolicyStoreTest, FileIsImportedOnceThenTheStoreIsTheSourceOfTruth) {
  write_file(file(), "[defaults]\nmemory_max = \"1G\"\n");
  auto ps = open(file());
  ASSERT_TRUE(ps) << ps.error().str();
  EXPECT_EQ((*ps)->current_version().version, 1);
  EXPECT_EQ((*ps)->current_version().author, "file:" + file());
  EXPECT_EQ((*ps)->current().defaults.memory_max, policies::Limit::of(1ull << 30));

  // An admin changes the policy; a restart with the same file keeps the admin's version.
  policies::PolicySet edited = (*ps)->current();
  edited.defaults.memory_max = policies::Limit::of(512ull << 20);
  now_ms_ += 1000;
  auto v2 = (*ps)->commit(edited, "admin:ada", "less memory");
  ASSERT_TRUE(v2) << v2.error().str();
  EXPECT_EQ(v2->version, 2);
  ps->reset();
  reopen_db();
  auto restarted = open(file());
  ASSERT_TRUE(restarted) << restarted.error().str();
  EXPECT_EQ((*restarted)->current_version().version, 2);
  EXPECT_EQ((*restarted)->current_version().author, "admin:ada");
  EXPECT_EQ((*restarted)->current_version().comment, "less memory");
  EXPECT_EQ((*restarted)->current(), edited);
}

TEST_F(PolicyStoreTest, ChangedFileIsImportedAgainAsNewVersion) {
  write_file(file(), "[defaults]\nmemory_max = \"1G\"\n");
  ASSERT_TRUE(open(file()));
  {
    auto ps = open(file());
    ASSERT_TRUE(ps);
    ASSERT_TRUE((*ps)->commit(policies::PolicySet{}, "admin:ada", ""));  // version 2
  }
  write_file(file(), "[defaults]\nmemory_max = \"2G\"\n");
  auto ps = open(file());
  ASSERT_TRUE(ps) << ps.error().str();
  EXPECT_EQ((*ps)->current_version().version, 3);
  EXPECT_EQ((*ps)->current_version().author, "file:" + file());
  EXPECT_EQ((*ps)->current_version().comment, "imported at start: the file changed since version 1");
  EXPECT_EQ((*ps)->current().defaults.memory_max, policies::Limit::of(2ull << 30));
  // Same content again: nothing new.
  auto same = open(file());
  ASSERT_TRUE(same);
  EXPECT_EQ((*same)->current_version().version, 3);
}

TEST_F(PolicyStoreTest, InvalidChangedFileIsAnErrorAndAddsNoVersion) {
  write_file(file(), "[defaults]\nmemory_max = \"1G\"\n");
  ASSERT_TRUE(open(file()));
  write_file(file(), "[defaults]\nmemory_max = \"1GB\"\n");
  auto ps = open(file());
  ASSERT_FALSE(ps);
  EXPECT_NE(ps.error().str().find("policies.toml:2: defaults.memory_max"), std::string::npos)
      << ps.error().str();
  auto latest = db_->latest_policy_version();
  ASSERT_TRUE(latest && *latest);
  EXPECT_EQ((*latest)->version, 1);
}

TEST_F(PolicyStoreTest, HistoryVersionsAndRollback) {
  auto ps = open("");
  ASSERT_TRUE(ps);
  policies::PolicySet a;
  a.defaults.max_sessions = 3;
  now_ms_ += 1000;
  ASSERT_TRUE((*ps)->commit(a, "admin:ada", "three sessions"));  // 2
  policies::PolicySet b;
  b.users["bob"].pids_max = policies::Limit::of(64);
  now_ms_ += 1000;
  ASSERT_TRUE((*ps)->commit(b, "admin:eve", ""));  // 3
  auto rolled = (*ps)->rollback(2, "admin:eve");
  ASSERT_TRUE(rolled && *rolled) << (rolled ? "not found" : rolled.error().str());
  EXPECT_EQ((*rolled)->version, 4);
  EXPECT_EQ((*rolled)->comment, "rollback to version 2");
  EXPECT_EQ((*ps)->current(), a);
  EXPECT_EQ((*ps)->current_version().version, 4);

  auto unknown = (*ps)->rollback(99, "admin:eve");
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
  EXPECT_EQ((*ps)->current_version().version, 4);

  auto history = (*ps)->history(10);
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 4u);
  EXPECT_EQ((*history)[0].version, 4);
  EXPECT_EQ((*history)[3].version, 1);
  EXPECT_EQ((*history)[1].author, "admin:eve");
  EXPECT_EQ((*history)[2].created_at, 1'700'000'001'000);
  auto v3 = (*ps)->version(3);
  ASSERT_TRUE(v3 && *v3);
  EXPECT_EQ(json::parse((*v3)->policy_json)["users"]["bob"]["pids_max"], 64);
  EXPECT_FALSE(*(*ps)->version(5));
}

TEST_F(PolicyStoreTest, VersionsSurviveReopenAndNumbersKeepGrowing) {
  PolicyVersion v{0, "admin:ada", 5, "c", "{}", ""};
  auto first = db_->add_policy_version(v);
  auto second = db_->add_policy_version(v);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->version, 1);
  EXPECT_EQ(second->version, 2);
  reopen_db();
  auto third = db_->add_policy_version(v);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->version, 3);
  auto latest_file = db_->latest_file_import();
  ASSERT_TRUE(latest_file);
  EXPECT_FALSE(*latest_file);
}

// --- The admin API -------------------------------------------------------------------------------

App app(std::string id, std::vector<std::string> users, std::vector<std::string> groups) {
  App a;
  a.id = id;
  a.name = "App " + id;
  a.command = {"/usr/bin/" + id};
  a.users = std::move(users);
  a.groups = std::move(groups);
  return a;
}

struct Login {
  std::string cookie;
  std::string csrf;
};

class PolicyApiTest : public ::testing::Test {
 protected:
  PolicyApiTest() : pool_(2) {
    config_.hosts.push_back({"local", "/run/fake-hostd.sock", 10});
    auth_.passwords = {{"alice", "alice-pw"}, {"bob", "bob-pw"}, {"ada", "ada-pw"}};
    users_.groups = {{"alice", {"alice", "staff"}}, {"bob", {"bob"}},
                     {"ada", {"ada", "appvirt-admins"}}};
    users_.only_known = true;
    store_ = std::move(*SqliteStore::open(dir_.path() + "/broker.db"));
    write_file(dir_.path() + "/policies.toml",
               "[defaults]\nmemory_max = \"1G\"\nmax_sessions = 5\n"
               "[groups.staff]\npids_max = 256\n");
    auto ps = PolicyStore::open(*store_, dir_.path() + "/policies.toml", [this] { return now_ms_; });
    EXPECT_TRUE(ps) << ps.error().str();
    policies_ = std::move(*ps);
    BrokerDeps deps{*store_, auth_, users_, host_, pool_, [this] { return now_ms_; },
                    policies_.get()};
    App limited = app("small", {"*"}, {});
    limited.limits.memory_max = 256ull << 20;
    std::vector<App> apps = {app("xterm", {}, {"staff"}), app("calc", {"*"}, {}), limited};
    svc_ = std::make_unique<BrokerService>(io_.get_executor(), config_, Catalog(apps), deps);
    web_ = std::make_unique<WebSessionTable>(std::chrono::hours(1), std::chrono::hours(1), 1000);
    api_ = std::make_unique<BrokerApi>(*svc_, *web_, ApiSecrets{});
    router_ = api_->router_for("10.1.2.3");
    testing::run_coro(io_, poll());
  }
  ~PolicyApiTest() override { pool_.join(); }

  boost::asio::awaitable<bool> poll() {
    co_await svc_->poll_once();
    co_return true;
  }
  http::Response call(bhttp::verb m, std::string target, std::string body = "",
                      std::map<std::string, std::string> headers = {}) {
    return testing::send(io_, router_,
                         testing::Call{m, std::move(target), std::move(body), std::move(headers)});
  }
  Login login(const std::string& user) {
    auto res = call(bhttp::verb::post, "/api/v1/login",
                    json{{"username", user}, {"password", user + "-pw"}}.dump());
    EXPECT_EQ(res.result_int(), 200u) << res.body();
    std::string set_cookie(res[bhttp::field::set_cookie]);
    std::string prefix = std::string(kSessionCookie) + "=";
    return {set_cookie.substr(prefix.size(), set_cookie.find(';') - prefix.size()),
            json::parse(res.body()).value("csrf_token", "")};
  }
  std::map<std::string, std::string> as(const Login& l, bool csrf = true) {
    std::map<std::string, std::string> h = {{"Cookie", std::string(kSessionCookie) + "=" + l.cookie}};
    if (csrf) h["X-CSRF-Token"] = l.csrf;
    return h;
  }
  http::Response put_policy(const Login& l, const json& body) {
    return call(bhttp::verb::put, "/api/v1/admin/policies", body.dump(), as(l));
  }
  http::Response launch(const Login& l, const std::string& app_id) {
    return call(bhttp::verb::post, "/api/v1/apps/" + app_id + "/launch", "",
                {{"Cookie", std::string(kSessionCookie) + "=" + l.cookie},
                 {"X-CSRF-Token", l.csrf},
                 {"Accept", "application/json"}});
  }
  static json body_of(const http::Response& r) { return json::parse(r.body(), nullptr, false); }
  std::vector<AuditEvent> audit_events(const std::string& event) {
    std::vector<AuditEvent> out;
    auto recent = store_->recent_audit(200);
    EXPECT_TRUE(recent);
    if (!recent) return out;
    for (const auto& e : *recent) {
      if (e.event == event) out.push_back(e);
    }
    return out;
  }

  TempDirectory dir_;
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_;
  BrokerConfig config_;
  testing::FakeAuthenticator auth_;
  testing::FakeUserDirectory users_;
  testing::FakeHostClient host_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<PolicyStore> policies_;
  int64_t now_ms_ = 1'700'000'000'000;
  std::unique_ptr<BrokerService> svc_;
  std::unique_ptr<WebSessionTable> web_;
  std::unique_ptr<BrokerApi> api_;
  http::Router router_;
};

TEST_F(PolicyApiTest, NonAdminsGet403AndStrangers401OnEveryPolicyRoute) {
  Login alice = login("alice");
  struct Route {
    bhttp::verb m;
    const char* target;
    const char* body;
  };
  const Route routes[] = {
      {bhttp::verb::get, "/api/v1/admin/policies", ""},
      {bhttp::verb::put, "/api/v1/admin/policies", "{\"defaults\":{}}"},
      {bhttp::verb::get, "/api/v1/admin/policies/history", ""},
      {bhttp::verb::get, "/api/v1/admin/policies/versions/1", ""},
      {bhttp::verb::post, "/api/v1/admin/policies/rollback", "{\"version\":1}"},
      {bhttp::verb::get, "/api/v1/admin/policies/resolve?user=alice", ""},
  };
  for (const Route& r : routes) {
    auto res = call(r.m, r.target, r.body, as(alice));
    EXPECT_EQ(res.result_int(), 403u) << r.target;
    auto anonymous = call(r.m, r.target, r.body);
    EXPECT_EQ(anonymous.result_int(), 401u) << r.target;
  }
  EXPECT_EQ(policies_->current_version().version, 1);
}

TEST_F(PolicyApiTest, GetShowsTheVersionInForceInJsonForm) {
  Login ada = login("ada");
  auto res = call(bhttp::verb::get, "/api/v1/admin/policies", "", as(ada, false));
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  json j = body_of(res);
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["author"], "file:" + dir_.path() + "/policies.toml");
  EXPECT_EQ(j["created_at"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j["policy"]["defaults"]["memory_max"], "1G");
  EXPECT_EQ(j["policy"]["groups"]["staff"]["pids_max"], 256);
  EXPECT_EQ(j["policy"]["groups"]["staff"]["priority"], 0);
}

TEST_F(PolicyApiTest, PutMakesNewVersionAuditsItAndNeedsCsrf) {
  Login ada = login("ada");
  json policy = {{"defaults", {{"memory_max", "2G"}, {"max_sessions", 4}}}};
  auto no_csrf = call(bhttp::verb::put, "/api/v1/admin/policies", policy.dump(), as(ada, false));
  EXPECT_EQ(no_csrf.result_int(), 403u);
  now_ms_ += 60'000;
  auto res = put_policy(ada, {{"policy", policy}, {"comment", "bigger"}});
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  json j = body_of(res);
  EXPECT_EQ(j["version"], 2);
  EXPECT_EQ(j["author"], "admin:ada");
  EXPECT_EQ(j["comment"], "bigger");
  EXPECT_EQ(j["created_at"], "2023-11-14T22:14:20Z");
  EXPECT_EQ(j["policy"], json({{"defaults", {{"memory_max", "2G"}, {"max_sessions", 4}}},
                               {"groups", json::object()},
                               {"users", json::object()}}));
  auto get = body_of(call(bhttp::verb::get, "/api/v1/admin/policies", "", as(ada)));
  EXPECT_EQ(get, j);
  // The unwrapped form works too.
  auto plain = put_policy(ada, policy);
  ASSERT_EQ(plain.result_int(), 200u) << plain.body();
  EXPECT_EQ(body_of(plain)["version"], 3);

  auto updates = audit_events("policy_update");
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[1].user, "ada");  // newest first
  EXPECT_EQ(updates[1].detail, "version=2 comment=bigger");
  EXPECT_EQ(updates[1].source, "admin:ada@10.1.2.3");
  EXPECT_EQ(updates[0].detail, "version=3");
}

TEST_F(PolicyApiTest, InvalidPutListsEveryErrorAndKeepsThePreviousVersion) {
  Login ada = login("ada");
  Login bob = login("bob");
  json bad = {{"defaults", {{"memory_max", "8M"}, {"clipboard", "out"}}},
              {"groups", {{"staff", {{"max_session", 2}}}}}};
  auto res = put_policy(ada, bad);
  ASSERT_EQ(res.result_int(), 400u) << res.body();
  json j = body_of(res);
  EXPECT_EQ(j["error"], "invalid policy");
  ASSERT_EQ(j["errors"].size(), 3u) << j.dump();
  std::set<std::string> paths;
  for (const auto& e : j["errors"]) {
    paths.insert(e["path"].get<std::string>());
    EXPECT_FALSE(e["message"].get<std::string>().empty());
  }
  EXPECT_EQ(paths, (std::set<std::string>{"defaults.memory_max", "defaults.clipboard",
                                          "groups.staff.max_session"}));
  auto malformed = call(bhttp::verb::put, "/api/v1/admin/policies", "[1,2]", as(ada));
  EXPECT_EQ(malformed.result_int(), 400u);
  auto bad_comment = put_policy(ada, {{"policy", json::object()}, {"comment", 5}});
  EXPECT_EQ(bad_comment.result_int(), 400u);

  EXPECT_EQ(body_of(call(bhttp::verb::get, "/api/v1/admin/policies", "", as(ada)))["version"], 1);
  EXPECT_EQ(audit_events("policy_rejected").size(), 1u);
  // A launch still gets the old limits.
  ASSERT_EQ(launch(bob, "calc").result_int(), 200u);
  EXPECT_EQ(host_.last_launch.limits["memory_max"], 1ull << 30);
}

TEST_F(PolicyApiTest, ChangePushesNewLimitsAndTimeoutsToUsersWithRunningSessions) {
  Login ada = login("ada");
  Login alice = login("alice");
  Login bob = login("bob");
  ASSERT_EQ(launch(alice, "xterm").result_int(), 200u);
  ASSERT_EQ(launch(bob, "small").result_int(), 200u);
  EXPECT_EQ(host_.last_launch.limits["memory_max"], 256ull << 20) << "the app's own cap";
  host_.limit_pushes.clear();

  json policy = {{"defaults", {{"memory_max", "512M"}, {"cpu_max", 150}, {"idle_timeout", "2h"},
                               {"disconnect_timeout", "never"}}},
                 {"groups", {{"staff", {{"pids_max", 128}, {"disconnect_timeout", "5m"}}}}}};
  ASSERT_EQ(put_policy(ada, policy).result_int(), 200u);
  std::map<std::string, json> pushed(host_.limit_pushes.begin(), host_.limit_pushes.end());
  ASSERT_EQ(pushed.size(), 2u);
  EXPECT_EQ(pushed["alice"],
            json({{"memory_max", 512ull << 20}, {"cpu_weight", 100}, {"cpu_max_percent", 150},
                  {"pids_max", 128}}));
  // bob runs "small": its own 256M cap stays in force below the new 512M.
  EXPECT_EQ(pushed["bob"], json({{"memory_max", 256ull << 20}, {"cpu_weight", 100},
                                 {"cpu_max_percent", 150}}));
  // The timeouts of the user's policy (apps do not narrow them), in seconds, 0 = never.
  std::map<std::string, json> timeouts(host_.timeout_pushes.begin(), host_.timeout_pushes.end());
  ASSERT_EQ(timeouts.size(), 2u);
  EXPECT_EQ(timeouts["alice"], json({{"idle_timeout_s", 7200}, {"disconnect_timeout_s", 300}}));
  EXPECT_EQ(timeouts["bob"], json({{"idle_timeout_s", 7200}, {"disconnect_timeout_s", 0}}));
  auto summary = audit_events("policy_push");
  ASSERT_EQ(summary.size(), 1u);
  EXPECT_EQ(summary[0].detail, "version=2 users=2 pushed=2 failed=0");

  // A rollback pushes too: version 1 has no timeouts, so the built-in defaults.
  host_.timeout_pushes.clear();
  auto back = call(bhttp::verb::post, "/api/v1/admin/policies/rollback", R"({"version":1})", as(ada));
  ASSERT_EQ(back.result_int(), 200u) << back.body();
  timeouts = std::map<std::string, json>(host_.timeout_pushes.begin(), host_.timeout_pushes.end());
  EXPECT_EQ(timeouts["alice"], json({{"idle_timeout_s", 0}, {"disconnect_timeout_s", 3600}}));

  // An unreachable host is reported, and the version still changes.
  host_.unreachable = true;
  host_.limit_pushes.clear();
  ASSERT_EQ(put_policy(ada, json::object()).result_int(), 200u);
  EXPECT_TRUE(host_.limit_pushes.empty());
  EXPECT_EQ(audit_events("policy_push_failed").size(), 2u);
  EXPECT_EQ(policies_->current_version().version, 4);
}

TEST_F(PolicyApiTest, EntitlementAndMaxSessionsApplyToTheNextLaunch) {
  Login ada = login("ada");
  Login bob = login("bob");
  ASSERT_EQ(launch(bob, "calc").result_int(), 200u);
  ASSERT_EQ(put_policy(ada, {{"users", {{"bob", {{"max_sessions", 1}, {"apps", {"calc"}}}}}}})
                .result_int(),
            200u);
  auto apps = body_of(call(bhttp::verb::get, "/api/v1/apps", "", as(bob, false)));
  ASSERT_EQ(apps["apps"].size(), 1u) << apps.dump();
  EXPECT_EQ(apps["apps"][0]["id"], "calc");
  EXPECT_EQ(launch(bob, "small").result_int(), 403u) << "not entitled any more";
  auto again = launch(bob, "calc");
  EXPECT_EQ(again.result_int(), 200u) << "reattaching is not a new session";
  EXPECT_EQ(body_of(again)["reused"], true);
  ASSERT_EQ(put_policy(ada, {{"users", {{"bob", {{"max_sessions", 1}}}}}}).result_int(), 200u);
  auto second = launch(bob, "small");
  EXPECT_EQ(second.result_int(), 403u) << second.body();
  EXPECT_NE(second.body().find("session limit"), std::string::npos) << second.body();
}

TEST_F(PolicyApiTest, HistoryVersionsAndRollback) {
  Login ada = login("ada");
  ASSERT_EQ(put_policy(ada, {{"policy", {{"defaults", {{"pids_max", 100}}}}}, {"comment", "a"}})
                .result_int(),
            200u);
  ASSERT_EQ(put_policy(ada, {{"defaults", {{"pids_max", 200}}}}).result_int(), 200u);

  auto history = body_of(call(bhttp::verb::get, "/api/v1/admin/policies/history", "", as(ada)));
  ASSERT_EQ(history["versions"].size(), 3u) << history.dump();
  EXPECT_EQ(history["versions"][0]["version"], 3);
  EXPECT_EQ(history["versions"][1]["comment"], "a");
  EXPECT_EQ(history["versions"][2]["author"], "file:" + dir_.path() + "/policies.toml");
  EXPECT_FALSE(history["versions"][0].contains("policy"));

  auto v2 = call(bhttp::verb::get, "/api/v1/admin/policies/versions/2", "", as(ada));
  ASSERT_EQ(v2.result_int(), 200u);
  EXPECT_EQ(body_of(v2)["policy"]["defaults"]["pids_max"], 100);
  for (const char* n : {"9", "0", "abc", "-1", "2x"}) {
    EXPECT_EQ(call(bhttp::verb::get, std::string("/api/v1/admin/policies/versions/") + n, "",
                   as(ada)).result_int(), 404u) << n;
  }

  auto rollback = [&](const std::string& body, bool csrf = true) {
    return call(bhttp::verb::post, "/api/v1/admin/policies/rollback", body, as(ada, csrf));
  };
  EXPECT_EQ(rollback("{\"version\":2}", false).result_int(), 403u);
  EXPECT_EQ(rollback("{\"version\":42}").result_int(), 404u);
  EXPECT_EQ(rollback("{\"version\":\"2\"}").result_int(), 400u);
  EXPECT_EQ(rollback("{}").result_int(), 400u);
  auto res = rollback("{\"version\":2}");
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  json j = body_of(res);
  EXPECT_EQ(j["version"], 4);
  EXPECT_EQ(j["comment"], "rollback to version 2");
  EXPECT_EQ(j["policy"], body_of(v2)["policy"]);
  EXPECT_EQ(policies_->current().defaults.pids_max, policies::Limit::of(100));
  auto rollbacks = audit_events("policy_rollback");
  ASSERT_EQ(rollbacks.size(), 1u);
  EXPECT_EQ(rollbacks[0].detail, "version=4 from=2");
  EXPECT_EQ(rollbacks[0].user, "ada");
}

TEST_F(PolicyApiTest, ResolveShowsEffectivePolicyAndSources) {
  Login ada = login("ada");
  ASSERT_EQ(put_policy(ada, {{"defaults", {{"memory_max", "1G"}}},
                             {"groups", {{"staff", {{"pids_max", 256}}}}},
                             {"users", {{"alice", {{"isolation", "vm"}}}}}})
                .result_int(),
            200u);
  auto res = call(bhttp::verb::get, "/api/v1/admin/policies/resolve?user=alice", "", as(ada));
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  json j = body_of(res);
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["groups"], json({"staff"}));
  EXPECT_EQ(j["member_of"], json({"alice", "staff"}));
  EXPECT_EQ(j["version"], 2);
  EXPECT_EQ(j["effective"]["memory_max"], "1G");
  EXPECT_EQ(j["effective"]["pids_max"], 256);
  EXPECT_EQ(j["effective"]["isolation"], "vm");
  EXPECT_EQ(j["effective"]["max_sessions"], 10);
  EXPECT_EQ(j["sources"]["memory_max"], "default");
  EXPECT_EQ(j["sources"]["pids_max"], "group:staff");
  EXPECT_EQ(j["sources"]["isolation"], "user:alice");
  EXPECT_EQ(j["sources"]["max_sessions"], "default");
  EXPECT_EQ(j["sources"].size(), policies::kFieldCount);

  // Percent-encoded names are decoded; unknown users are 404, a missing parameter 400.
  users_.groups["x@corp"] = {"staff"};
  auto encoded = call(bhttp::verb::get, "/api/v1/admin/policies/resolve?user=x%40corp", "", as(ada));
  ASSERT_EQ(encoded.result_int(), 200u) << encoded.body();
  EXPECT_EQ(body_of(encoded)["user"], "x@corp");
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/admin/policies/resolve?user=nobody", "", as(ada))
                .result_int(), 404u);
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/admin/policies/resolve?user=a%2", "", as(ada))
                .result_int(), 400u);
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/admin/policies/resolve", "", as(ada)).result_int(),
            400u);
}

TEST_F(PolicyApiTest, TiedGroupsNameEveryContributingGroup) {
  Login ada = login("ada");
  users_.groups["carol"] = {"carol", "g1", "g2"};
  ASSERT_EQ(put_policy(ada, {{"groups", {{"g1", {{"apps", {"a", "b"}}}}, {"g2", {{"apps", {"b", "c"}}}}}}})
                .result_int(),
            200u);
  json j = body_of(call(bhttp::verb::get, "/api/v1/admin/policies/resolve?user=carol", "", as(ada)));
  EXPECT_EQ(j["effective"]["apps"], json({"b"}));
  EXPECT_EQ(j["sources"]["apps"], "group:g1 & group:g2");
}

}  // namespace
}  // namespace appvirt::broker
