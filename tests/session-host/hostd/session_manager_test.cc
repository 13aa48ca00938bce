// SessionManager with fake seams (tests/session-host/hostd/fakes.h) and real processes, pidfds,
// reaping and state files in a temp directory: launch, rollback, exit reasons, logoff,
// retention and re-adoption after a restart.
#include "session-host/hostd/session_manager.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "common/http_client.h"

#include "session-host/hostd/control_api.h"
#include "session-host/hostd/endpoint_activity.h"
#include "tests/session-host/hostd/fakes.h"

namespace appvirt::hostd {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::FakeCgroups;
using testing::FakeClock;
using testing::FakeRdp;
using testing::FakeSandbox;
using testing::FakeUserDb;

bool exists(const std::string& p) { return fs::exists(fs::symlink_status(p)); }

mode_t mode_of(const std::string& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 07777;
}

uid_t owner_of(const std::string& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_uid;
}

class SessionManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hostd-sm-test-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    config_.state_dir = root_ + "/state";
    config_.runtime_dir = root_ + "/run";
    config_.xvfb_path = "/fake/Xvfb";
    config_.display_first = 500;
    config_.display_last = 502;
    config_.xvfb_start_timeout = 1500ms;
    config_.ended_retention = 600s;
    config_.tls_cert = root_ + "/tls/rdp.crt";
    config_.tls_key = root_ + "/tls/rdp.key";
    // As root the fake users get ordinary uids; otherwise the test's own uid, the only one a
    // non-root process can chown to.
    bool root = ::geteuid() == 0;
    uid_t u = root ? 1001 : ::geteuid();
    gid_t g = root ? 1001 : ::getegid();
    config_.min_uid = std::min<uid_t>(1000, u);
    users_.users["alice"] = {"alice", u, g, {g}, root_ + "/home/alice"};
    users_.users["bob"] = {"bob", root ? 1002 : u, g, {g}, root_ + "/home/bob"};
    users_.users["appvirt-rdp"] = {"appvirt-rdp", root ? 999u : u, g, {g}, "/nonexistent"};
    users_.users["root"] = {"root", 0, 0, {0}, "/root"};
    users_.users["daemon"] = {"daemon", 1, 1, {1}, "/usr/sbin"};
    store_ = std::make_unique<SessionStore>(config_.state_dir);
    ASSERT_TRUE(store_->init());
    reaper_ = std::make_unique<ChildReaper>(io_.get_executor());
    reaper_->start();
    make_manager();
  }

  void TearDown() override {
    if (manager_) manager_->terminate_all("test-end");
    manager_.reset();
    for (auto& [path, pids] : cgroups_.members) {
      for (pid_t p : pids) ::kill(p, SIGKILL);
    }
    for (pid_t p : rdp_.pids) ::kill(p, SIGKILL);
    run_for(50ms);
    reaper_->stop();
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    fs::remove_all(root_);
  }

  void make_manager() {
    displays_ = std::make_unique<DisplayAllocator>(config_.display_first, config_.display_last,
                                                   [] { return std::set<int>{}; });
    SessionManagerDeps deps{users_, sandbox_, cgroups_, rdp_, clock_, *store_, *displays_,
                            reaper_.get()};
    manager_ = std::make_unique<SessionManager>(io_.get_executor(), config_, deps);
  }

  void run_for(std::chrono::milliseconds d) {
    if (io_.stopped()) io_.restart();
    io_.run_for(d);
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds timeout = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      run_for(10ms);
    }
    return true;
  }

  ApiResult<LaunchResult> launch(LaunchRequest req) {
    std::optional<ApiResult<LaunchResult>> out;
    asio::co_spawn(io_, manager_->launch(std::move(req)),
                   [&](std::exception_ptr, ApiResult<LaunchResult> r) { out = std::move(r); });
    EXPECT_TRUE(run_until([&] { return out.has_value(); }, 10s));
    if (!out) return api_error(599, "launch did not complete");
    return std::move(*out);
  }

  static LaunchRequest req(std::string user, std::vector<std::string> command = {"/bin/sleep", "1000"}) {
    LaunchRequest r;
    r.user = std::move(user);
    r.app_id = "test-app";
    r.command = std::move(command);
    r.width = 800;
    r.height = 600;
    return r;
  }

  Session session(const std::string& id) {
    auto s = manager_->get(id);
    EXPECT_TRUE(s) << id;
    return s ? *s : Session{};
  }

  bool dead(pid_t pid) {
    return run_until([&] { return !proc_start_time(pid); });
  }

  std::string runtime(const std::string& user) { return config_.runtime_dir.string() + "/u/" + user; }

  // Everything a session leaves behind, checked after it ended.
  void expect_session_cleaned(const Session& s) {
    EXPECT_TRUE(dead(s.app.pid)) << "app " << s.app.pid;
    EXPECT_TRUE(dead(s.xvfb.pid)) << "xvfb " << s.xvfb.pid;
    EXPECT_TRUE(dead(s.rdp.pid)) << "rdp " << s.rdp.pid;
    EXPECT_FALSE(exists(config_.runtime_dir.string() + "/s/" + s.id));
    EXPECT_FALSE(exists(runtime(s.user) + "/run/" + s.id));
    EXPECT_FALSE(exists(runtime(s.user) + "/x11/X" + std::to_string(s.display)));
    EXPECT_FALSE(exists(store_->secret_path(s.id)));
    EXPECT_FALSE(cgroups_.existing.count(s.session_cgroup()));
    EXPECT_FALSE(cgroups_.existing.count(s.rdp_cgroup()));
  }

  std::string root_;
  HostdConfig config_;
  asio::io_context io_;
  FakeUserDb users_;
  FakeCgroups cgroups_;
  FakeSandbox sandbox_{cgroups_, "/fake/Xvfb"};
  FakeRdp rdp_;
  FakeClock clock_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<DisplayAllocator> displays_;
  std::unique_ptr<ChildReaper> reaper_;
  std::unique_ptr<SessionManager> manager_;
};

TEST_F(SessionManagerTest, LaunchBuildsContainerDisplayAppAndEndpoint) {
  auto r = launch(req("alice"));
  ASSERT_TRUE(r) << r.error().message;
  const Session& s = r->session;
  EXPECT_EQ(s.state, SessionState::running);
  EXPECT_EQ(s.display, 500);
  EXPECT_EQ(r->secret.size(), 64u);
  EXPECT_EQ(s.endpoint_unix, config_.runtime_dir.string() + "/s/" + s.id + "/rdp.sock");

  ASSERT_EQ(sandbox_.creates.size(), 1u);
  EXPECT_EQ(sandbox_.creates[0].cgroup, "appvirt/u-alice");
  EXPECT_EQ(sandbox_.creates[0].runtime_dir, runtime("alice"));
  ASSERT_EQ(sandbox_.execs.size(), 2u);
  const ExecSpec& xvfb = sandbox_.execs[0];
  std::vector<std::string> want_xvfb = {"/fake/Xvfb", ":500", "-auth",
                                        "/run/appvirt/" + s.id + "/Xauthority", "-screen", "0",
                                        "800x600x24", "-nolisten", "tcp", "-nolisten", "local",
                                        "-noreset", "-extension", "GLX"};  // display.glx off
  EXPECT_EQ(xvfb.argv, want_xvfb);
  EXPECT_EQ(xvfb.cgroup, "appvirt/u-alice/s-" + s.id);
  const ExecSpec& app = sandbox_.execs[1];
  EXPECT_EQ(app.argv, (std::vector<std::string>{"/bin/sleep", "1000"}));
  EXPECT_NE(std::find(app.env.begin(), app.env.end(), "DISPLAY=:500"), app.env.end());
  EXPECT_NE(std::find(app.env.begin(), app.env.end(),
                      "XAUTHORITY=/run/appvirt/" + s.id + "/Xauthority"),
            app.env.end());
  EXPECT_EQ(app.cwd, root_ + "/home/alice");

  ASSERT_EQ(rdp_.launches.size(), 1u);
  const RdpSpec& rdp = rdp_.launches[0];
  EXPECT_EQ(rdp.display, 500);
  EXPECT_EQ(rdp.x11_dir, runtime("alice") + "/x11");
  EXPECT_EQ(rdp.secret_file, store_->secret_path(s.id));
  EXPECT_EQ(rdp.run_as, "appvirt-rdp");
  EXPECT_TRUE(cgroups_.existing.count("appvirt/rdp/s-" + s.id));

  // Xauthority copies: the user's (seen in the container) and the rdp user's, both 0600.
  std::string user_xauth = runtime("alice") + "/run/" + s.id + "/Xauthority";
  std::string rdp_xauth = config_.runtime_dir.string() + "/s/" + s.id + "/Xauthority";
  EXPECT_EQ(mode_of(user_xauth), 0600u);
  EXPECT_EQ(mode_of(rdp_xauth), 0600u);
  EXPECT_EQ(owner_of(user_xauth), users_.users["alice"].uid);
  EXPECT_EQ(owner_of(rdp_xauth), users_.users["appvirt-rdp"].uid);
  EXPECT_EQ(mode_of(runtime("alice") + "/x11"), 0770u);
  std::ifstream secret(store_->secret_path(s.id));
  std::string stored;
  secret >> stored;
  EXPECT_EQ(stored, r->secret);
  EXPECT_EQ(mode_of(store_->secret_path(s.id)), 0600u);
  auto listed = manager_->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(manager_->active_sessions(), 1u);
  // The state file carries what a restarted hostd needs, never the secret.
  std::ifstream state(config_.state_dir / "sessions" / (s.id + ".json"));
  std::string text((std::istreambuf_iterator<char>(state)), {});
  EXPECT_NE(text.find("\"running\""), std::string::npos);
  EXPECT_EQ(text.find(r->secret), std::string::npos);
}

TEST_F(SessionManagerTest, SecondLaunchReusesTheContainerWithANewDisplay) {
  auto a = launch(req("alice"));
  auto b = launch(req("alice"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(sandbox_.creates.size(), 1u);
  EXPECT_NE(a->session.display, b->session.display);
  EXPECT_NE(a->secret, b->secret);
  EXPECT_NE(a->session.id, b->session.id);
}

TEST_F(SessionManagerTest, ConcurrentLaunchesOfOneUserCreateOneContainer) {
  std::vector<std::optional<ApiResult<LaunchResult>>> out(3);
  for (auto& o : out) {
    asio::co_spawn(io_, manager_->launch(req("alice")),
                   [&o](std::exception_ptr, ApiResult<LaunchResult> r) { o = std::move(r); });
  }
  ASSERT_TRUE(run_until([&] { return out[0] && out[1] && out[2]; }, 10s));
  for (auto& o : out) EXPECT_TRUE(*o);
  EXPECT_EQ(sandbox_.creates.size(), 1u);
}

TEST_F(SessionManagerTest, RejectsUnknownRootAndSystemUsers) {
  auto unknown = launch(req("mallory"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().status, 404);
  auto root = launch(req("root"));
  ASSERT_FALSE(root);
  EXPECT_EQ(root.error().status, 403);
  auto system = launch(req("daemon"));
  ASSERT_FALSE(system);
  EXPECT_EQ(system.error().status, 403);
  auto bad = launch(req("../etc"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_TRUE(sandbox_.creates.empty());
}

TEST_F(SessionManagerTest, FailedEndpointRollsBackEverything) {
  rdp_.fail_launch = true;
  auto r = launch(req("alice"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 500);
  EXPECT_NE(r.error().message.find("appvirt-rdp"), std::string::npos);
  EXPECT_TRUE(manager_->list().empty());
  ASSERT_EQ(sandbox_.execs.size(), 2u);
  // Xvfb, the app and the container init were killed; nothing of the session remains.
  for (auto& [path, pids] : cgroups_.members) EXPECT_TRUE(pids.empty()) << path;
  EXPECT_TRUE(cgroups_.existing.empty());
  EXPECT_FALSE(exists(runtime("alice")));
  EXPECT_TRUE(fs::is_empty(config_.state_dir / "sessions"));
  EXPECT_TRUE(fs::is_empty(config_.state_dir / "containers"));
  // The display number was given back, and the daemon keeps launching.
  rdp_.fail_launch = false;
  auto again = launch(req("alice"));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->session.display, 500);
}

TEST_F(SessionManagerTest, FailedContainerCreateFailsOnlyThatLaunch) {
  sandbox_.fail_create = true;
  auto r = launch(req("alice"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("fake create failed"), std::string::npos);
  EXPECT_FALSE(exists(runtime("alice")));
  sandbox_.fail_create = false;
  EXPECT_TRUE(launch(req("bob")));
}

TEST_F(SessionManagerTest, XvfbThatNeverListensTimesOutAndRollsBack) {
  sandbox_.xvfb_makes_socket = false;
  auto r = launch(req("alice"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 504);
  EXPECT_EQ(sandbox_.execs.size(), 1u);  // the app never started
  EXPECT_TRUE(rdp_.launches.empty());
  EXPECT_FALSE(exists(runtime("alice")));
}

TEST_F(SessionManagerTest, AppThatExitsDuringLaunchFailsTheLaunch) {
  // The endpoint takes 300 ms: /bin/true is gone by then, whichever way hostd learns it.
  rdp_.delay = 300ms;
  auto r = launch(req("alice", {"/bin/true"}));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exited"), std::string::npos) << r.error().message;
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_FALSE(exists(runtime("alice")));
}

TEST_F(SessionManagerTest, AppExitEndsSessionWithReasonAndStatus) {
  auto r = launch(req("alice"));
  ASSERT_TRUE(r);
  Session s = r->session;
  ::kill(s.app.pid, SIGTERM);
  ASSERT_TRUE(run_until([&] { return session(s.id).state == SessionState::ended; }));
  Session ended = session(s.id);
  EXPECT_EQ(ended.end_reason, "app-exited");
  ASSERT_TRUE(ended.exit_status);
  EXPECT_TRUE(WIFSIGNALED(*ended.exit_status));
  EXPECT_EQ(WTERMSIG(*ended.exit_status), SIGTERM);
  EXPECT_NE(ended.ended_at, 0);
  expect_session_cleaned(s);
  // Last session of the user: the container is gone too.
  EXPECT_FALSE(exists(runtime("alice")));
  EXPECT_FALSE(cgroups_.existing.count("appvirt/u-alice"));
  EXPECT_TRUE(fs::is_empty(config_.state_dir / "containers"));
  EXPECT_EQ(manager_->active_sessions(), 0u);
}

TEST_F(SessionManagerTest, OomKillIsReportedAsOomKilled) {
  auto r = launch(req("alice"));
  ASSERT_TRUE(r);
  Session s = r->session;
  cgroups_.oom[s.session_cgroup()] = 1;
  ::kill(s.app.pid, SIGKILL);
  ASSERT_TRUE(run_until([&] { return session(s.id).state == SessionState::ended; }));
  EXPECT_EQ(session(s.id).end_reason, "oom-killed");
}

TEST_F(SessionManagerTest, XvfbOrRdpExitEndsTheSession) {
  auto a = launch(req("alice"));
  auto b = launch(req("alice"));
  ASSERT_TRUE(a && b);
  ::kill(a->session.xvfb.pid, SIGKILL);
  ::kill(b->session.rdp.pid, SIGKILL);
  ASSERT_TRUE(run_until([&] {
    return session(a->session.id).state == SessionState::ended &&
           session(b->session.id).state == SessionState::ended;
  }));
  EXPECT_EQ(session(a->session.id).end_reason, "xvfb-exited");
  EXPECT_EQ(session(b->session.id).end_reason, "rdp-exited");
  expect_session_cleaned(a->session);
  expect_session_cleaned(b->session);
}

TEST_F(SessionManagerTest, LogoffEndsOnlyThatSessionAndKeepsTheContainer) {
  auto a = launch(req("alice"));
  auto b = launch(req("alice"));
  ASSERT_TRUE(a && b);
  auto off = manager_->logoff(a->session.id);
  ASSERT_TRUE(off);
  EXPECT_EQ(off->state, SessionState::ended);
  EXPECT_EQ(off->end_reason, "logoff");
  expect_session_cleaned(a->session);
  EXPECT_EQ(session(b->session.id).state, SessionState::running);
  EXPECT_TRUE(exists(runtime("alice")));
  EXPECT_TRUE(cgroups_.existing.count("appvirt/u-alice"));
  // Logoff again: idempotent, still reports the first end.
  auto again = manager_->logoff(a->session.id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->end_reason, "logoff");
  // The second session's logoff takes the container with it.
  ASSERT_TRUE(manager_->logoff(b->session.id));
  expect_session_cleaned(b->session);
  EXPECT_FALSE(exists(runtime("alice")));
  EXPECT_FALSE(cgroups_.existing.count("appvirt/u-alice"));
  EXPECT_FALSE(manager_->logoff("nosuchid"));
}

TEST_F(SessionManagerTest, ContainerInitExitEndsItsSessions) {
  auto a = launch(req("alice"));
  auto b = launch(req("bob"));
  ASSERT_TRUE(a && b);
  pid_t init = *cgroups_.members["appvirt/u-alice"].begin();
  ::kill(init, SIGKILL);
  ASSERT_TRUE(run_until([&] { return session(a->session.id).state == SessionState::ended; }));
  EXPECT_EQ(session(a->session.id).end_reason, "container-exited");
  EXPECT_EQ(session(b->session.id).state, SessionState::running);
  EXPECT_FALSE(exists(runtime("alice")));
}

TEST_F(SessionManagerTest, EndedSessionsStayListedForTheRetentionTime) {
  manager_.reset();
  config_.ended_retention = 1s;
  make_manager();
  auto r = launch(req("alice"));
  ASSERT_TRUE(r);
  ASSERT_TRUE(manager_->logoff(r->session.id));
  EXPECT_EQ(manager_->list().size(), 1u);
  EXPECT_TRUE(exists((config_.state_dir / "sessions" / (r->session.id + ".json")).string()));
  ASSERT_TRUE(run_until([&] { return manager_->list().empty(); }, 3s));
  EXPECT_FALSE(exists((config_.state_dir / "sessions" / (r->session.id + ".json")).string()));
}

TEST_F(SessionManagerTest, RestartReadoptsLiveSessionsAndEndsLostOnes) {
  auto a = launch(req("alice"));
  auto b = launch(req("alice"));
  auto c = launch(req("bob"));
  ASSERT_TRUE(a && b && c);
  // hostd stops without touching its sessions...
  manager_->detach();
  manager_.reset();
  // ...meanwhile b's app dies and bob's whole container goes away.
  ::kill(b->session.app.pid, SIGKILL);
  for (pid_t p : cgroups_.members["appvirt/u-bob"]) ::kill(p, SIGKILL);
  ASSERT_TRUE(dead(b->session.app.pid));
  ASSERT_TRUE(dead(*cgroups_.members["appvirt/u-bob"].begin()));

  make_manager();
  manager_->adopt();
  EXPECT_EQ(session(a->session.id).state, SessionState::running);
  EXPECT_EQ(session(b->session.id).state, SessionState::ended);
  EXPECT_EQ(session(b->session.id).end_reason, "lost");
  EXPECT_EQ(session(c->session.id).end_reason, "lost");
  expect_session_cleaned(b->session);
  expect_session_cleaned(c->session);
  EXPECT_FALSE(exists(runtime("bob")));
  EXPECT_TRUE(exists(runtime("alice")));
  EXPECT_EQ(sandbox_.creates.size(), 2u);  // nothing new was created
  // The adopted session is watched again: its app exiting ends it.
  ::kill(a->session.app.pid, SIGTERM);
  ASSERT_TRUE(run_until([&] { return session(a->session.id).state == SessionState::ended; }));
  EXPECT_EQ(session(a->session.id).end_reason, "app-exited");
  expect_session_cleaned(a->session);
  EXPECT_FALSE(exists(runtime("alice")));
  // Its display was reserved on adoption and is free again now.
  auto d = launch(req("alice"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->session.display, 500);
}

TEST_F(SessionManagerTest, RestartDoesNotAdoptAReusedPid) {
  auto a = launch(req("alice"));
  ASSERT_TRUE(a);
  manager_->detach();
  manager_.reset();
  // Same pid, different start time: what a reused pid looks like in the state file.
  auto path = config_.state_dir / "sessions" / (a->session.id + ".json");
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  j["pids"]["app"]["start_time"] = j["pids"]["app"]["start_time"].get<uint64_t>() + 12345;
  std::ofstream(path) << j.dump();
  make_manager();
  manager_->adopt();
  EXPECT_EQ(session(a->session.id).end_reason, "lost");
  expect_session_cleaned(a->session);
}

TEST_F(SessionManagerTest, DisplaysRunOutWith503) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(launch(req("alice")));
  auto r = launch(req("alice"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 503);
}

TEST_F(SessionManagerTest, UserLimitsChangeLive) {
  auto r = launch(req("alice"));
  ASSERT_TRUE(r);
  Limits l;
  l.memory_max = 256ull << 20;
  l.pids_max = 100;
  auto applied = manager_->set_user_limits("alice", l);
  ASSERT_TRUE(applied);
  EXPECT_EQ(cgroups_.limits["appvirt/u-alice"].memory_max, 256ull << 20);
  EXPECT_EQ(cgroups_.limits["appvirt/u-alice"].pids_max, 100);
  auto none = manager_->set_user_limits("bob", l);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().status, 404);
}

TEST_F(SessionManagerTest, TerminateAllEndsEverything) {
  auto a = launch(req("alice"));
  auto b = launch(req("bob"));
  ASSERT_TRUE(a && b);
  manager_->terminate_all("hostd-shutdown");
  EXPECT_EQ(session(a->session.id).end_reason, "hostd-shutdown");
  expect_session_cleaned(a->session);
  expect_session_cleaned(b->session);
  EXPECT_FALSE(exists(runtime("alice")));
  EXPECT_FALSE(exists(runtime("bob")));
  EXPECT_TRUE(cgroups_.existing.empty());
}

// The control API end to end over its Unix socket, with the same fakes behind it.
class ControlApiTest : public SessionManagerTest {
 protected:
  void SetUp() override {
    SessionManagerTest::SetUp();
    sock_ = root_ + "/hostd.sock";
    server_ = std::make_unique<http::HttpServer>(make_control_router(*manager_), http::ServerLimits{});
    acceptor_.emplace(io_, asio::local::stream_protocol::endpoint(sock_));
    server_->start(*acceptor_);
  }
  void TearDown() override {
    acceptor_->close();
    run_for(20ms);
    SessionManagerTest::TearDown();
  }
  // The blocking client runs on a thread while this thread runs hostd's io_context.
  http::ClientResponse call(http::bhttp::verb method, std::string target, std::string body = {}) {
    auto fut = std::async(std::launch::async, [=, this] {
      return http::unix_request(sock_, method, target, body, 10s);
    });
    EXPECT_TRUE(run_until([&] { return fut.wait_for(0s) == std::future_status::ready; }, 15s));
    auto r = fut.get();
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : http::ClientResponse{};
  }
  static nlohmann::json json(const http::ClientResponse& r) {
    return nlohmann::json::parse(r.body, nullptr, false);
  }

  std::string sock_;
  std::unique_ptr<http::HttpServer> server_;
  std::optional<asio::local::stream_protocol::acceptor> acceptor_;
};

using verb = http::bhttp::verb;

TEST_F(ControlApiTest, SessionLifecycleOverHttp) {
  auto created = call(verb::post, "/v1/sessions",
                      R"({"user":"alice","app_id":"sleep","command":["/bin/sleep","1000"],
                          "width":640,"height":480,"limits":{"memory_max":"256M"}})");
  ASSERT_EQ(created.status, 201u) << created.body;
  auto c = json(created);
  std::string id = c["session_id"];
  EXPECT_EQ(c["secret"].get<std::string>().size(), 64u);
  EXPECT_EQ(c["display"], 500);
  EXPECT_EQ(c["endpoint"]["unix"], config_.runtime_dir.string() + "/s/" + id + "/rdp.sock");
  EXPECT_TRUE(c["endpoint"]["tcp"].is_null());

  auto got = json(call(verb::get, "/v1/sessions/" + id));
  EXPECT_EQ(got["state"], "running");
  EXPECT_EQ(got["user"], "alice");
  EXPECT_EQ(got["app_id"], "sleep");
  EXPECT_TRUE(got["end_reason"].is_null());
  EXPECT_GT(got["pids"]["app"].get<int>(), 0);
  EXPECT_EQ(got["limits"]["memory_max"], 256u << 20);
  EXPECT_EQ(got.count("secret"), 0u);

  auto list = json(call(verb::get, "/v1/sessions"));
  ASSERT_EQ(list["sessions"].size(), 1u);
  auto health = json(call(verb::get, "/v1/health"));
  EXPECT_EQ(health["ok"], true);
  EXPECT_EQ(health["sessions"], 1);
  EXPECT_EQ(health["cgroup"], "v2");

  auto limits = call(verb::put, "/v1/users/alice/limits", R"({"pids_max":77})");
  EXPECT_EQ(limits.status, 200u) << limits.body;
  EXPECT_EQ(cgroups_.limits["appvirt/u-alice"].pids_max, 77);
  auto timeouts = call(verb::put, "/v1/users/alice/timeouts",
                       R"({"idle_timeout_s":600,"disconnect_timeout_s":120})");
  ASSERT_EQ(timeouts.status, 200u) << timeouts.body;
  EXPECT_EQ(json(timeouts)["sessions"], nlohmann::json::array({id}));
  got = json(call(verb::get, "/v1/sessions/" + id));
  EXPECT_EQ(got["idle_timeout_s"], 600);
  EXPECT_EQ(got["disconnect_timeout_s"], 120);

  auto off = call(verb::delete_, "/v1/sessions/" + id);
  ASSERT_EQ(off.status, 200u);
  EXPECT_EQ(json(off)["state"], "ended");
  EXPECT_EQ(json(off)["end_reason"], "logoff");
  EXPECT_EQ(json(call(verb::get, "/v1/health"))["sessions"], 0);
}

TEST_F(ControlApiTest, ErrorsMapToStatusCodes) {
  auto malformed = call(verb::post, "/v1/sessions", R"({"user":)");
  EXPECT_EQ(malformed.status, 400u);
  EXPECT_NE(json(malformed)["error"].get<std::string>().find("malformed JSON"), std::string::npos);
  auto invalid = call(verb::post, "/v1/sessions", R"({"user":"alice"})");
  EXPECT_EQ(invalid.status, 400u);
  auto unknown_user =
      call(verb::post, "/v1/sessions", R"({"user":"nobody1","app_id":"x","command":["/bin/true"]})");
  EXPECT_EQ(unknown_user.status, 404u);
  EXPECT_EQ(call(verb::get, "/v1/sessions/0123456789abcdef").status, 404u);
  EXPECT_EQ(call(verb::delete_, "/v1/sessions/0123456789abcdef").status, 404u);
  EXPECT_EQ(call(verb::put, "/v1/sessions").status, 405u);
  EXPECT_EQ(call(verb::get, "/v2/anything").status, 404u);
  EXPECT_EQ(call(verb::put, "/v1/users/alice/limits", R"({"pids_max":77})").status, 404u);
  EXPECT_EQ(call(verb::put, "/v1/users/alice/limits", R"({"pids_max":"many"})").status, 400u);
  EXPECT_EQ(call(verb::put, "/v1/users/alice/timeouts", R"({"idle_timeout_s":60})").status, 404u);
  EXPECT_EQ(call(verb::put, "/v1/users/alice/timeouts", R"({"idle_timeout_s":-5})").status, 400u);
  std::string huge(2 * 1024 * 1024, 'x');
  EXPECT_EQ(call(verb::post, "/v1/sessions", huge).status, 413u);
}

// Idle and disconnect timeouts: the test plays appvirt-rdp and writes the activity report.
class SessionTimeoutsTest : public SessionManagerTest {
 protected:
  void SetUp() override {
    SessionManagerTest::SetUp();
    config_.activity_poll = 50ms;
    make_manager();
  }
  LaunchRequest timed(int64_t idle_s, int64_t disconnect_s) {
    LaunchRequest r = req("alice");
    r.idle_timeout_s = idle_s;
    r.disconnect_timeout_s = disconnect_s;
    return r;
  }
  // clients, and how many ms ago they changed / the last input came (-1: no input yet).
  void report(const Session& s, int clients, int64_t since_ago, int64_t input_ago) {
    int64_t now = clock_.now_mono_ms();
    std::string path = config_.runtime_dir.string() + "/s/" + s.id + "/status.json";
    std::ofstream(path + ".tmp") << nlohmann::json{
        {"clients", clients}, {"since_ms", now - since_ago},
        {"last_input_ms", input_ago < 0 ? 0 : now - input_ago}}.dump();
    fs::rename(path + ".tmp", path);
  }
  bool still_running(const std::string& id, std::chrono::milliseconds for_how_long) {
    run_for(for_how_long);
    return session(id).state == SessionState::running;
  }
};

TEST_F(SessionTimeoutsTest, EndpointIsToldWhereToReport) {
  auto r = launch(timed(0, 0));
  ASSERT_TRUE(r);
  ASSERT_EQ(rdp_.launches.size(), 1u);
  EXPECT_EQ(rdp_.launches[0].status_file,
            config_.runtime_dir.string() + "/s/" + r->session.id + "/status.json");
  auto argv = rdp_argv("/x/appvirt-rdp", rdp_.launches[0]);
  auto it = std::find(argv.begin(), argv.end(), "--status-file");
  ASSERT_NE(it, argv.end());
  EXPECT_EQ(*std::next(it), rdp_.launches[0].status_file);
}

TEST_F(SessionTimeoutsTest, DisconnectTimeoutEndsASessionWithoutClient) {
  auto r = launch(timed(0, 2));
  ASSERT_TRUE(r);
  Session s = r->session;
  EXPECT_EQ(s.disconnect_timeout_s, 2);
  report(s, 0, 500, -1);
  EXPECT_TRUE(still_running(s.id, 400ms));
  report(s, 1, 5000, -1);  // a client connected long ago and never typed: no idle timeout set
  EXPECT_TRUE(still_running(s.id, 300ms));
  report(s, 0, 2500, 3000);  // it left 2.5 s ago
  ASSERT_TRUE(run_until([&] { return session(s.id).state == SessionState::ended; }));
  EXPECT_EQ(session(s.id).end_reason, "disconnect-timeout");
  expect_session_cleaned(s);
}

TEST_F(SessionTimeoutsTest, IdleTimeoutCountsOnlyWhileConnectedWithoutInput) {
  auto r = launch(timed(1, 0));
  ASSERT_TRUE(r);
  Session s = r->session;
  report(s, 0, 60'000, -1);  // nobody connected for a minute: idle does not apply
  EXPECT_TRUE(still_running(s.id, 300ms));
  report(s, 1, 60'000, 100);  // connected, typing
  EXPECT_TRUE(still_running(s.id, 300ms));
  report(s, 1, 200, 60'000);  // reconnected just now: idle counts from the connect
  EXPECT_TRUE(still_running(s.id, 300ms));
  report(s, 2, 3000, 1500);  // connected, last key 1.5 s ago
  ASSERT_TRUE(run_until([&] { return session(s.id).state == SessionState::ended; }));
  EXPECT_EQ(session(s.id).end_reason, "idle-timeout");
  expect_session_cleaned(s);
}

TEST_F(SessionTimeoutsTest, NoReportNoVerdictAndNoTimeoutsNoPolling) {
  auto r = launch(timed(1, 1));
  ASSERT_TRUE(r);
  std::string path = config_.runtime_dir.string() + "/s/" + r->session.id + "/status.json";
  EXPECT_TRUE(still_running(r->session.id, 1500ms));  // missing file: never ended on no evidence
  std::ofstream(path) << "{\"clients\":-1}";
  EXPECT_TRUE(still_running(r->session.id, 300ms));  // garbage: the same
  auto untimed = launch(timed(0, 0));
  ASSERT_TRUE(untimed);
  report(untimed->session, 0, 3'600'000, -1);
  EXPECT_TRUE(still_running(untimed->session.id, 300ms));
}

TEST_F(SessionTimeoutsTest, TimeoutsArePersistedAndEnforcedAfterARestart) {
  auto r = launch(timed(0, 1));
  ASSERT_TRUE(r);
  Session s = r->session;
  report(s, 1, 1000, -1);
  manager_->detach();
  manager_.reset();
  make_manager();
  manager_->adopt();
  Session adopted = session(s.id);
  ASSERT_EQ(adopted.state, SessionState::running);
  EXPECT_EQ(adopted.disconnect_timeout_s, 1);
  report(s, 0, 1500, -1);
  ASSERT_TRUE(run_until([&] { return session(s.id).state == SessionState::ended; }));
  EXPECT_EQ(session(s.id).end_reason, "disconnect-timeout");
}

TEST_F(SessionTimeoutsTest, PolicyChangeSetsTimeoutsOfRunningSessionsAndTheyArePersisted) {
  auto r = launch(timed(0, 0));  // launched without any timeout
  ASSERT_TRUE(r);
  Session s = r->session;
  report(s, 0, 60'000, -1);  // nobody connected for a minute
  EXPECT_TRUE(still_running(s.id, 200ms));
  report(s, 1, 60'000, -1);  // a client is back: the disconnect timeout does not run
  auto changed = manager_->set_user_timeouts("alice", {0, 1});
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_EQ(*changed, std::vector<std::string>{s.id});
  EXPECT_EQ(session(s.id).disconnect_timeout_s, 1);
  EXPECT_TRUE(still_running(s.id, 200ms));
  // A restarted hostd re-adopts the session with the changed value, and enforces it.
  manager_->detach();
  manager_.reset();
  make_manager();
  manager_->adopt();
  EXPECT_EQ(session(s.id).disconnect_timeout_s, 1);
  EXPECT_EQ(session(s.id).idle_timeout_s, 0);
  report(s, 0, 1500, -1);
  ASSERT_TRUE(run_until([&] { return session(s.id).state == SessionState::ended; }));
  EXPECT_EQ(session(s.id).end_reason, "disconnect-timeout");
}

TEST_F(SessionTimeoutsTest, PolicyChangeCanLiftATimeoutAndNeedsALiveSession) {
  auto r = launch(timed(0, 1));
  ASSERT_TRUE(r);
  Session s = r->session;
  auto lifted = manager_->set_user_timeouts("alice", {0, 0});
  ASSERT_TRUE(lifted);
  report(s, 0, 5000, -1);  // gone for 5 s, five times the old timeout
  EXPECT_TRUE(still_running(s.id, 400ms));
  EXPECT_EQ(session(s.id).disconnect_timeout_s, 0);
  auto nobody = manager_->set_user_timeouts("bob", {0, 60});
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().status, 404);
  ASSERT_TRUE(manager_->logoff(s.id));
  auto ended = manager_->set_user_timeouts("alice", {0, 60});
  ASSERT_FALSE(ended) << "an ended session is not changed";
  EXPECT_EQ(ended.error().status, 404);
  EXPECT_EQ(session(s.id).disconnect_timeout_s, 0);
}

TEST(TimeoutsRequestTest, SecondsZeroOrAbsentMeansNoneAndUnknownFieldsAreRefused) {
  auto ok = timeouts_from_json(nlohmann::json::parse(R"({"idle_timeout_s":900,"disconnect_timeout_s":60})"));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->idle_s, 900);
  EXPECT_EQ(ok->disconnect_s, 60);
  auto none = timeouts_from_json(nlohmann::json::parse(R"({"idle_timeout_s":null})"));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->any());
  for (const char* bad : {R"({"idle_timeout_s":-1})", R"({"disconnect_timeout_s":"1h"})",
                          R"({"disconnect_timeout_s":1e12})", R"({"idle":5})"}) {
    EXPECT_FALSE(timeouts_from_json(nlohmann::json::parse(bad))) << bad;
  }
}

TEST(EndpointActivityTest, VerdictFollowsTheDocumentedRules) {
  SessionTimeouts both{10, 20};
  // No client: the disconnect timeout counts from the last change.
  EXPECT_EQ(timeout_verdict({0, 1000, 0}, both, 20'999).reason, "");
  EXPECT_EQ(timeout_verdict({0, 1000, 0}, both, 20'999).next_check_ms, 21'000);
  EXPECT_EQ(timeout_verdict({0, 1000, 0}, both, 21'000).reason, "disconnect-timeout");
  // Connected: idle from the later of connect and last input.
  EXPECT_EQ(timeout_verdict({1, 1000, 5000}, both, 14'999).reason, "");
  EXPECT_EQ(timeout_verdict({1, 1000, 5000}, both, 15'000).reason, "idle-timeout");
  EXPECT_EQ(timeout_verdict({1, 9000, 5000}, both, 18'999).reason, "");
  EXPECT_EQ(timeout_verdict({1, 1000, 0}, both, 11'000).reason, "idle-timeout");
  // 0 = never.
  EXPECT_EQ(timeout_verdict({0, 0, 0}, {10, 0}, 1'000'000'000).reason, "");
  EXPECT_EQ(timeout_verdict({3, 0, 0}, {0, 10}, 1'000'000'000).reason, "");
}

TEST(EndpointActivityTest, ReportIsReadDefensively) {
  char tmpl[] = "/tmp/hostd-activity-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string file = dir + "/status.json";
  std::ofstream(file) << R"({"clients":2,"since_ms":123,"last_input_ms":456})";
  auto ok = read_endpoint_activity(file);
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(ok->clients, 2);
  EXPECT_EQ(ok->since_ms, 123);
  EXPECT_EQ(ok->last_input_ms, 456);
  for (const char* bad : {"", "[]", R"({"clients":1,"since_ms":1})",
                          R"({"clients":-1,"since_ms":1,"last_input_ms":0})",
                          R"({"clients":"1","since_ms":1,"last_input_ms":0})"}) {
    std::ofstream(file, std::ios::trunc) << bad;
    EXPECT_FALSE(read_endpoint_activity(file)) << bad;
  }
  std::ofstream(file, std::ios::trunc) << std::string(5000, ' ');
  EXPECT_FALSE(read_endpoint_activity(file));
  fs::remove(file);
  fs::create_symlink("/etc/passwd", file);  // the rdp user owns the dir: no symlinks followed
  EXPECT_FALSE(read_endpoint_activity(file));
  fs::remove(file);
  ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0);  // nor blocking on a FIFO
  EXPECT_FALSE(read_endpoint_activity(file));
  fs::remove_all(dir);
}

TEST(LaunchRequestTest, TimeoutsAreSecondsZeroMeansNone) {
  auto ok = launch_request_from_json(nlohmann::json::parse(
      R"({"user":"a","app_id":"x","command":["/x"],"idle_timeout_s":900,"disconnect_timeout_s":0})"));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->idle_timeout_s, 900);
  EXPECT_EQ(ok->disconnect_timeout_s, 0);
  auto none = launch_request_from_json(
      nlohmann::json::parse(R"({"user":"a","app_id":"x","command":["/x"]})"));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->idle_timeout_s, 0);
  for (const char* bad : {R"({"user":"a","app_id":"x","command":["/x"],"idle_timeout_s":-1})",
                          R"({"user":"a","app_id":"x","command":["/x"],"idle_timeout_s":"1h"})",
                          R"({"user":"a","app_id":"x","command":["/x"],"disconnect_timeout_s":1e12})"}) {
    auto r = launch_request_from_json(nlohmann::json::parse(bad));
    EXPECT_FALSE(r) << bad;
  }
}

TEST(LaunchRequestTest, ValidatesBody) {
  auto ok = launch_request_from_json(nlohmann::json::parse(
      R"({"user":"alice","app_id":"xterm","command":["/usr/bin/xterm"],"width":1280,"height":720,
          "limits":{"memory_max":"512M","pids_max":64}})"));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->limits.memory_max, 512ull << 20);
  EXPECT_EQ(ok->width, 1280);
  auto bad = [](const char* body) {
    auto r = launch_request_from_json(nlohmann::json::parse(body));
    return r ? std::string() : r.error().message;
  };
  EXPECT_EQ(bad(R"({"app_id":"x","command":["/bin/x"]})"), "user: required string");
  EXPECT_EQ(bad(R"({"user":"a","command":["/bin/x"]})"), "app_id: required non-empty string");
  EXPECT_EQ(bad(R"({"user":"a","app_id":"x","command":[]})"),
            "command: required non-empty array of strings");
  EXPECT_EQ(bad(R"({"user":"a","app_id":"x","command":["x"]})"),
            "command: the program must be an absolute path");
  EXPECT_EQ(bad(R"({"user":"a","app_id":"x","command":["/x"],"colour":1})"), "colour: unknown field");
  EXPECT_EQ(bad(R"({"user":"a","app_id":"x","command":["/x"],"width":10})"),
            "width: must be between 64 and 8192");
  EXPECT_EQ(bad(R"({"user":"a","app_id":"x","command":["/x"],"limits":{"memory":1}})"),
            "limits.memory: unknown key");
  EXPECT_EQ(bad(R"({"user":"a","app_id":"x","command":["/x"],"limits":{"cpu_weight":0}})"),
            "limits.cpu_weight: must be between 1 and 10000");
}

}  // namespace
}  // namespace appvirt::hostd
