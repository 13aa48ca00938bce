// Unit tests of the broker config (errors name file, line and key) and of the SQLite store on a
// temporary database file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "broker/broker_config.h"
#include "broker/sqlite_store.h"

namespace appvirt::broker {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/broker-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(BrokerConfig, DefaultsAreValid) {
  auto c = parse_broker_config("", "broker.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->listen.port, 8443);
  EXPECT_EQ(c->pam_service, "appvirt");
  EXPECT_EQ(c->launch_token_ttl.count(), 60);
  EXPECT_EQ(c->database, fs::path("/var/lib/appvirt/broker/broker.db"));
  EXPECT_FALSE(c->gateway_address.empty());
}

TEST(BrokerConfig, FullExampleParses) {
  auto c = parse_broker_config(R"(
gateway_address = "rdp.example.com:3389"
admin_group = "ops"
[listen]
address = "127.0.0.1"
port = 0
max_body_bytes = 4096
[lockout]
max_failures_per_user = 3
[[hosts]]
name = "local"
socket = "/run/appvirt/hostd.sock"
capacity = 20
[[apps]]
id = "xterm"
name = "XTerm"
command = ["/usr/bin/xterm", "-fa", "Mono"]
groups = ["staff"]
isolation = "container"
[apps.limits]
memory_max = "512M"
pids_max = 256
)", "broker.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->gateway_address, "rdp.example.com:3389");
  EXPECT_EQ(c->listen.max_body_bytes, 4096u);
  EXPECT_EQ(c->lockout.max_failures_per_user, 3);
  ASSERT_EQ(c->hosts.size(), 1u);
  EXPECT_EQ(c->hosts[0].capacity, 20);
  ASSERT_EQ(c->apps.size(), 1u);
  EXPECT_EQ(c->apps[0].command.size(), 3u);
  EXPECT_EQ(c->apps[0].groups, std::vector<std::string>{"staff"});
  EXPECT_EQ(*c->apps[0].limits.memory_max, 512ull << 20);
  EXPECT_EQ(*c->apps[0].limits.pids_max, 256);
}

TEST(BrokerConfig, ErrorsNameFileLineAndKey) {
  auto c = parse_broker_config(R"(log_level = "info"
[listen]
port = 70000
colour = "blue"
address = "localhost"
[[apps]]
id = "ok"
command = ["/bin/true"]
users = ["*"]
[[apps]]
id = "Bad Id"
command = ["relative"]
users = ["*"]
surprise = 1
)", "/etc/appvirt/broker.toml");
  ASSERT_FALSE(c);
  const std::string& m = c.error().message;
  EXPECT_NE(m.find("/etc/appvirt/broker.toml:3: listen.port: must be between 0 and 65535"),
            std::string::npos) << m;
  EXPECT_NE(m.find("/etc/appvirt/broker.toml:4: listen.colour: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("/etc/appvirt/broker.toml:5: listen.address: must be an IPv4 or IPv6"),
            std::string::npos) << m;
  EXPECT_NE(m.find("/etc/appvirt/broker.toml:11: apps[1].id:"), std::string::npos) << m;
  EXPECT_NE(m.find("/etc/appvirt/broker.toml:12: apps[1].command:"), std::string::npos) << m;
  EXPECT_NE(m.find("/etc/appvirt/broker.toml:14: apps[1].surprise: unknown key"), std::string::npos) << m;
  EXPECT_EQ(m.find("apps[0]"), std::string::npos) << "the valid app has no issue: " << m;
}

TEST(BrokerConfig, AppNeedsUsersOrGroupsAndIdsAreUnique) {
  auto c = parse_broker_config(R"([[apps]]
id = "a"
command = ["/bin/true"]
[[apps]]
id = "b"
command = ["/bin/true"]
users = ["x"]
[[apps]]
id = "b"
command = ["/bin/true"]
groups = ["y"]
)", "c.toml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("apps[0].users"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("c.toml:9: apps[2].id: duplicate app id"), std::string::npos)
      << c.error().message;
}

TEST(BrokerConfig, SyntaxErrorNamesLineAndColumn) {
  auto c = parse_broker_config("a = 1\nb = = 2\n", "x.toml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message.rfind("x.toml:2:", 0), 0u) << c.error().message;
}

TEST(BrokerConfig, CatalogFileIsMergedAndChecked) {
  TempDir dir;
  std::ofstream(dir.path() + "/apps.toml") << "[[apps]]\nid = \"calc\"\ncommand = [\"/usr/bin/xcalc\"]\nusers = [\"*\"]\n";
  std::ofstream(dir.path() + "/broker.toml")
      << "catalog_file = \"" << dir.path() << "/apps.toml\"\n"
      << "[[apps]]\nid = \"xterm\"\ncommand = [\"/usr/bin/xterm\"]\nusers = [\"*\"]\n";
  auto c = load_broker_config(dir.path() + "/broker.toml");
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_EQ(c->apps.size(), 2u);
  EXPECT_EQ(c->apps[1].id, "calc");
  std::ofstream(dir.path() + "/apps.toml", std::ios::trunc) << "[[apps]]\nid = \"calc\"\nicon = 5\n";
  auto bad = load_broker_config(dir.path() + "/broker.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find(dir.path() + "/apps.toml:3: apps[0].icon: must be a string"),
            std::string::npos) << bad.error().message;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteStore::open(dir_.path() + "/broker.db");
    ASSERT_TRUE(s) << s.error().str();
    store_ = std::move(*s);
  }
  SessionRecord session(std::string id, std::string user, std::string app, int64_t at) {
    SessionRecord s;
    s.id = std::move(id);
    s.user = std::move(user);
    s.app_id = std::move(app);
    s.host = "h1";
    s.state = "running";
    s.secret = "sekrit";
    s.created_at = at;
    return s;
  }
  TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(StoreTest, FileIsPrivateAndInWalMode) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() + "/broker.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(store_->put_session(session("s1", "alice", "xterm", 1)));
  EXPECT_TRUE(fs::exists(dir_.path() + "/broker.db-wal"));
}

TEST_F(StoreTest, SessionsRoundTripAndSurviveReopen) {
  ASSERT_TRUE(store_->put_session(session("s1", "alice", "xterm", 100)));
  ASSERT_TRUE(store_->put_session(session("s2", "alice", "xterm", 200)));
  ASSERT_TRUE(store_->put_session(session("s3", "bob", "calc", 300)));
  auto live = store_->find_live_session("alice", "xterm");
  ASSERT_TRUE(live && *live);
  EXPECT_EQ((*live)->id, "s2") << "the newest live one";
  ASSERT_TRUE(store_->end_session("s2", "logoff", 400));
  live = store_->find_live_session("alice", "xterm");
  EXPECT_EQ((*live)->id, "s1");
  store_.reset();
  auto reopened = SqliteStore::open(dir_.path() + "/broker.db");
  ASSERT_TRUE(reopened) << reopened.error().str();
  auto s2 = (*reopened)->get_session("s2");
  ASSERT_TRUE(s2 && *s2);
  EXPECT_EQ((*s2)->state, "ended");
  EXPECT_EQ((*s2)->end_reason, "logoff");
  EXPECT_EQ((*s2)->ended_at, 400);
  EXPECT_EQ((*s2)->secret, "sekrit");
  EXPECT_EQ((*reopened)->list_sessions("alice", false)->size(), 1u);
  EXPECT_EQ((*reopened)->list_sessions("alice", true)->size(), 2u);
  EXPECT_EQ((*reopened)->list_sessions("", false)->size(), 2u);
}

TEST_F(StoreTest, TokensAreSingleUseAndExpire) {
  ASSERT_TRUE(store_->put_token({"hash1", "s1", "alice", 1000}));
  ASSERT_TRUE(store_->put_token({"hash2", "s1", "alice", 1000}));
  auto r = store_->redeem_token("hash1", 999);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, TokenStatus::ok);
  EXPECT_EQ(r->token.session_id, "s1");
  EXPECT_EQ(r->token.user, "alice");
  EXPECT_EQ(store_->redeem_token("hash1", 999)->status, TokenStatus::used);
  EXPECT_EQ(store_->redeem_token("hash2", 1000)->status, TokenStatus::expired);
  EXPECT_EQ(store_->redeem_token("nope", 1)->status, TokenStatus::unknown);
  EXPECT_EQ(*store_->purge_tokens(1001), 2);
  EXPECT_EQ(store_->redeem_token("hash1", 1)->status, TokenStatus::unknown);
  EXPECT_FALSE(store_->put_token({"hash3", "s", "u", 1}) && store_->put_token({"hash3", "s", "u", 1}))
      << "a token hash is unique";
}

TEST_F(StoreTest, HostsAndAudit) {
  ASSERT_TRUE(store_->put_host({"n1", "/run/x.sock", 5, false, "container,vm", 42, "{\"a\":1}"}));
  ASSERT_TRUE(store_->put_host({"n1", "/run/x.sock", 7, false, "container", 43, "{}"}));
  auto hosts = store_->list_hosts();
  ASSERT_TRUE(hosts);
  ASSERT_EQ(hosts->size(), 1u);
  EXPECT_EQ((*hosts)[0].capacity, 7);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->audit({0, i, "login", "alice", "1.2.3.4", "d" + std::to_string(i)}));
  auto events = store_->recent_audit(3);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].detail, "d4");
  EXPECT_EQ((*events)[2].detail, "d2");
}

TEST_F(StoreTest, NewerSchemaIsRefused) {
  store_.reset();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_.path() + "/broker.db").c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto s = SqliteStore::open(dir_.path() + "/broker.db");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("newer"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace appvirt::broker
