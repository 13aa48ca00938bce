// Unit tests of the broker's HTTP API and service logic: the real router, handlers, service,
// throttle, web sessions and SQLite store (temporary file), with a fake authenticator, user
// directory and host.
#include <gtest/gtest.h>

#include <boost/algorithm/string/case_conv.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "broker/api.h"
#include "broker/sqlite_store.h"
#include "broker/static_files.h"
#include "policies/policy_file.h"
#include "tests/broker/fakes.h"

namespace appvirt::broker {
namespace {

namespace fs = std::filesystem;
namespace bhttp = boost::beast::http;
using testing::Call;
using testing::FakeAuthenticator;
using testing::FakeHostClient;
using testing::FakeUserDirectory;

const std::string kGatewaySecret(40, 'g');
const std::string kHostSecret(40, 'h');

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

class ApiTest : public ::testing::Test {
 protected:
  ApiTest() : pool_(2) {
    char tmpl[] = "/tmp/broker-api-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config_.hosts.push_back({"local", "/run/fake-hostd.sock", 10});
    config_.lockout.max_failures_per_user = 3;
    config_.lockout.max_failures_per_address = 50;
    config_.gateway_address = "gw.test:3389";
    auth_.passwords = {{"alice", "alice-pw"}, {"bob", "bob-pw"}, {"ada", "ada-pw"}};
    users_.groups = {{"alice", {"alice", "staff"}}, {"bob", {"bob"}},
                     {"ada", {"ada", "appvirt-admins"}}};
    store_ = std::move(*SqliteStore::open(dir_ + "/broker.db"));
    start_service();
  }
  ~ApiTest() override {
    pool_.join();
    fs::remove_all(dir_);
  }

  void start_service() {
    BrokerDeps deps{*store_, auth_, users_, host_, pool_, [this] { return now_ms_; }};
    std::vector<App> apps = {app("xterm", {}, {"staff"}), app("calc", {"*"}, {}),
                             app("secret", {"carol"}, {})};
    svc_ = std::make_unique<BrokerService>(io_.get_executor(), config_, Catalog(apps), deps);
    web_ = std::make_unique<WebSessionTable>(std::chrono::hours(1), std::chrono::hours(1), 1000);
    api_ = std::make_unique<BrokerApi>(*svc_, *web_, ApiSecrets{kGatewaySecret, kHostSecret});
    router_ = api_->router_for("::ffff:10.1.2.3");
    testing::run_coro(io_, poll());
  }
  boost::asio::awaitable<bool> poll() {
    co_await svc_->poll_once();
    co_return true;
  }

  http::Response call(bhttp::verb m, std::string target, std::string body = "",
                      std::map<std::string, std::string> headers = {}) {
    return testing::send(io_, router_, Call{m, std::move(target), std::move(body), std::move(headers)});
  }
  http::Response login_raw(const std::string& user, const std::string& pw) {
    return call(bhttp::verb::post, "/api/v1/login",
                nlohmann::json{{"username", user}, {"password", pw}}.dump());
  }
  Login login(const std::string& user, const std::string& pw) {
    auto res = login_raw(user, pw);
    EXPECT_EQ(res.result_int(), 200u) << res.body();
    std::string set_cookie(res[bhttp::field::set_cookie]);
    std::string prefix = std::string(kSessionCookie) + "=";
    Login l;
    l.cookie = set_cookie.substr(prefix.size(), set_cookie.find(';') - prefix.size());
    l.csrf = nlohmann::json::parse(res.body()).value("csrf_token", "");
    return l;
  }
  std::map<std::string, std::string> auth_headers(const Login& l, bool csrf = true) {
    std::map<std::string, std::string> h = {{"Cookie", std::string(kSessionCookie) + "=" + l.cookie}};
    if (csrf) h["X-CSRF-Token"] = l.csrf;
    return h;
  }
  http::Response launch(const Login& l, const std::string& app_id, bool csrf = true) {
    return call(bhttp::verb::post, "/api/v1/apps/" + app_id + "/launch", "", auth_headers(l, csrf));
  }
  static std::string token_of(const http::Response& rdp) {
    std::string body = rdp.body();
    std::string key = "loadbalanceinfo:s:Cookie: msts=";
    auto pos = body.find(key);
    if (pos == std::string::npos) return {};
    return body.substr(pos + key.size(), body.find("\r\n", pos) - pos - key.size());
  }
  http::Response redeem(const std::string& token, const std::string& secret = kGatewaySecret) {
    return call(bhttp::verb::post, "/internal/v1/tokens/redeem",
                nlohmann::json{{"token", token}}.dump(), {{"Authorization", "Bearer " + secret}});
  }

  std::string dir_;
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_;
  BrokerConfig config_;
  FakeAuthenticator auth_;
  FakeUserDirectory users_;
  FakeHostClient host_;
  std::unique_ptr<SqliteStore> store_;
  int64_t now_ms_ = 1'700'000'000'000;
  std::unique_ptr<BrokerService> svc_;
  std::unique_ptr<WebSessionTable> web_;
  std::unique_ptr<BrokerApi> api_;
  http::Router router_;
};

TEST_F(ApiTest, LoginSetsHardenedCookieAndCsrfToken) {
  auto res = login_raw("alice", "alice-pw");
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  std::string cookie(res[bhttp::field::set_cookie]);
  EXPECT_EQ(cookie.rfind(std::string(kSessionCookie) + "=", 0), 0u) << cookie;
  for (const char* attr : {"; HttpOnly", "; Secure", "; SameSite=Strict", "; Path=/"}) {
    EXPECT_NE(cookie.find(attr), std::string::npos) << attr << " missing in " << cookie;
  }
  auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body["user"], "alice");
  EXPECT_EQ(body["admin"], false);
  EXPECT_GE(body["csrf_token"].get<std::string>().size(), 22u);
  EXPECT_EQ(auth_.last_address, "10.1.2.3") << "IPv4-mapped peer is normalised for PAM_RHOST";
}

TEST(ResponseDecoratorTest, EveryResponseGetsTheSecurityHeadersAndKeepsItsOwnCaching) {
  // What the broker's server applies to each response it writes (errors before routing too).
  http::Response error = http::error_response(bhttp::status::request_timeout, "timeout");
  api::decorate(error);
  EXPECT_EQ(error["Content-Security-Policy"], "default-src 'none'; frame-ancestors 'none'");
  EXPECT_EQ(error["Cache-Control"], "no-store");
  EXPECT_EQ(error["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(error["X-Frame-Options"], "DENY");
  EXPECT_EQ(error["Referrer-Policy"], "no-referrer");
  EXPECT_EQ(error["Strict-Transport-Security"], "max-age=31536000");

  http::Response rdp{bhttp::status::ok, 11};
  rdp.set(bhttp::field::content_type, "application/x-rdp");
  api::decorate(rdp);
  EXPECT_EQ(rdp["Content-Security-Policy"], kPortalCsp);
  EXPECT_EQ(rdp["Cache-Control"], "no-store");

  // A portal file keeps its revalidation and its CSP.
  http::Response page{bhttp::status::ok, 11};
  page.set(bhttp::field::content_type, "text/html; charset=utf-8");
  page.set(bhttp::field::cache_control, "no-cache");
  page.set("Content-Security-Policy", "default-src 'self'");
  api::decorate(page);
  EXPECT_EQ(page["Cache-Control"], "no-cache");
  EXPECT_EQ(page["Content-Security-Policy"], "default-src 'self'");
  EXPECT_EQ(page["X-Frame-Options"], "DENY");
}

TEST_F(ApiTest, WrongPasswordAndUnknownUserLookTheSame) {
  auto a = login_raw("alice", "nope");
  auto b = login_raw("nobody", "nope");
  EXPECT_EQ(a.result_int(), 401u);
  EXPECT_EQ(b.result_int(), 401u);
  EXPECT_EQ(a.body(), b.body());
  EXPECT_TRUE(a[bhttp::field::set_cookie].empty());
}

TEST_F(ApiTest, LockoutAfterRepeatedFailuresSkipsPam) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(login_raw("alice", "bad").result_int(), 401u);
  int calls = auth_.calls;
  auto locked = login_raw("alice", "alice-pw");
  EXPECT_EQ(locked.result_int(), 429u) << locked.body();
  EXPECT_EQ(locked[bhttp::field::retry_after], std::to_string(config_.lockout.lockout.count()));
  EXPECT_EQ(auth_.calls, calls) << "a locked user's password is not even checked";
  EXPECT_EQ(login_raw("bob", "bob-pw").result_int(), 200u) << "other users still sign in";
  auto events = store_->recent_audit(10);
  bool lockout_logged = false;
  for (const auto& e : *events) lockout_logged |= e.event == "lockout" && e.user == "alice";
  EXPECT_TRUE(lockout_logged);
  for (const auto& e : *events) EXPECT_EQ(e.detail.find("alice-pw"), std::string::npos);
}

TEST_F(ApiTest, MalformedRequestsAreRefused) {
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/login", "{\"username\":").result_int(), 400u);
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/login", "[1,2]").result_int(), 400u);
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/login", "{\"username\":\"a\"}").result_int(), 400u);
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/login",
                 "{\"username\":\"a\",\"password\":\"b\",\"extra\":1}").result_int(), 400u);
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/login", "{\"username\":5,\"password\":\"b\"}").result_int(), 400u);
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/login", "username=a&password=b",
                 {{"Content-Type", "application/x-www-form-urlencoded"}}).result_int(), 415u);
  EXPECT_EQ(login_raw("bad\nname", "x").result_int(), 401u);
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/login").result_int(), 405u);
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/nothing").result_int(), 404u);
}

TEST_F(ApiTest, AppsListOnlyEntitledApps) {
  auto apps_of = [&](const Login& l) {
    auto res = call(bhttp::verb::get, "/api/v1/apps", "", auth_headers(l, false));
    EXPECT_EQ(res.result_int(), 200u) << res.body();
    std::vector<std::string> ids;
    nlohmann::json body = nlohmann::json::parse(res.body());
    for (const auto& a : body["apps"]) ids.push_back(a["id"]);
    return ids;
  };
  EXPECT_EQ(apps_of(login("alice", "alice-pw")), (std::vector<std::string>{"xterm", "calc"}));
  EXPECT_EQ(apps_of(login("bob", "bob-pw")), (std::vector<std::string>{"calc"}));
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/apps").result_int(), 401u);
}

TEST_F(ApiTest, LaunchNeedsSessionCsrfAndEntitlement) {
  Login alice = login("alice", "alice-pw");
  Login bob = login("bob", "bob-pw");
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/apps/calc/launch").result_int(), 401u);
  EXPECT_EQ(launch(alice, "calc", false).result_int(), 403u);
  Login wrong = alice;
  wrong.csrf = bob.csrf;
  EXPECT_EQ(launch(wrong, "calc").result_int(), 403u) << "another session's CSRF token";
  EXPECT_EQ(launch(bob, "xterm").result_int(), 403u);
  EXPECT_EQ(launch(alice, "secret").result_int(), 403u);
  EXPECT_EQ(launch(alice, "nope").result_int(), 404u);
  EXPECT_EQ(host_.launches, 0);
}

TEST_F(ApiTest, LaunchReturnsRdpFileAndSecondLaunchReattaches) {
  Login alice = login("alice", "alice-pw");
  auto first = launch(alice, "xterm");
  ASSERT_EQ(first.result_int(), 200u) << first.body();
  EXPECT_EQ(first[bhttp::field::content_type], "application/x-rdp");
  EXPECT_EQ(first[bhttp::field::content_disposition], "attachment; filename=\"xterm.rdp\"");
  EXPECT_NE(first.body().find("full address:s:gw.test:3389\r\n"), std::string::npos);
  EXPECT_NE(first.body().find("username:s:alice\r\n"), std::string::npos);
  EXPECT_EQ(host_.last_launch.user, "alice");
  EXPECT_EQ(host_.last_launch.command, std::vector<std::string>{"/usr/bin/xterm"});
  EXPECT_EQ(host_.last_launch.width, config_.default_width);
  std::string t1 = token_of(first);
  EXPECT_EQ(t1.size(), 43u);
  auto second = launch(alice, "xterm");
  ASSERT_EQ(second.result_int(), 200u) << second.body();
  EXPECT_EQ(second["X-Appvirt-Reused"], "true");
  EXPECT_EQ(second["X-Appvirt-Session-Id"], first["X-Appvirt-Session-Id"]);
  EXPECT_EQ(host_.launches, 1) << "the running session is reused";
  EXPECT_NE(token_of(second), t1) << "every launch gets a fresh token";
  auto json = call(bhttp::verb::post, "/api/v1/apps/calc/launch", "{\"width\":800,\"height\":600}",
                   [&] { auto h = auth_headers(alice); h["Accept"] = "application/json"; return h; }());
  ASSERT_EQ(json.result_int(), 200u) << json.body();
  auto j = nlohmann::json::parse(json.body());
  EXPECT_EQ(j["reused"], false);
  EXPECT_NE(j["rdp_file"].get<std::string>().find("desktopwidth:i:800"), std::string::npos);
  EXPECT_EQ(host_.last_launch.height, 600);
}

TEST_F(ApiTest, ConcurrentLaunchesOfOneAppStartOneSession) {
  host_.launch_delay = std::chrono::milliseconds(200);
  std::vector<LaunchOutcome> results;
  auto one = [this, &results]() -> boost::asio::awaitable<void> {
    std::vector<std::string> groups = {"alice", "staff"};
    LaunchOutcome o = co_await svc_->launch("alice", groups, "xterm", 0, 0, "test");
    results.push_back(std::move(o));
  };
  boost::asio::co_spawn(io_, one(), boost::asio::detached);
  boost::asio::co_spawn(io_, one(), boost::asio::detached);
  io_.restart();
  io_.run_for(std::chrono::seconds(5));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(host_.launches, 1);
  EXPECT_EQ(results[0].session.id, results[1].session.id);
  EXPECT_NE(results[0].reused, results[1].reused);
  EXPECT_NE(results[0].token, results[1].token);
}

TEST_F(ApiTest, TokenRedeemsOnceAndExpires) {
  Login alice = login("alice", "alice-pw");
  std::string t1 = token_of(launch(alice, "xterm"));
  EXPECT_EQ(redeem(t1, std::string(40, 'x')).result_int(), 401u);
  EXPECT_EQ(call(bhttp::verb::post, "/internal/v1/tokens/redeem", "{\"token\":\"" + t1 + "\"}").result_int(), 401u);
  EXPECT_EQ(redeem(t1, kHostSecret).result_int(), 401u) << "the host secret is not the gateway's";
  auto ok = redeem(t1);
  ASSERT_EQ(ok.result_int(), 200u) << ok.body();
  auto j = nlohmann::json::parse(ok.body());
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["secret"], "secret-of-sess1");
  EXPECT_EQ(j["endpoint"]["unix"], "/run/appvirt/s/sess1/rdp.sock");
  EXPECT_EQ(redeem(t1).result_int(), 404u) << "single use";
  std::string t2 = token_of(launch(alice, "xterm"));
  now_ms_ += 61'000;
  EXPECT_EQ(redeem(t2).result_int(), 404u) << "expired after 60 s";
  std::string t3 = token_of(launch(alice, "xterm"));
  now_ms_ += 59'000;
  EXPECT_EQ(redeem(t3).result_int(), 200u);
  EXPECT_EQ(redeem("garbage!").result_int(), 404u);
  EXPECT_EQ(store_->list_sessions("", true)->size(), 1u);
}

TEST_F(ApiTest, TokenOfLoggedOffSessionIsRejected) {
  Login alice = login("alice", "alice-pw");
  auto res = launch(alice, "xterm");
  std::string id(res["X-Appvirt-Session-Id"]);
  auto del = call(bhttp::verb::delete_, "/api/v1/sessions/" + id, "", auth_headers(alice));
  ASSERT_EQ(del.result_int(), 200u) << del.body();
  EXPECT_EQ(nlohmann::json::parse(del.body())["state"], "ended");
  EXPECT_EQ(host_.logoffs, 1);
  EXPECT_EQ(redeem(token_of(res)).result_int(), 404u);
}

TEST_F(ApiTest, UsersSeeAndEndOnlyTheirOwnSessions) {
  Login alice = login("alice", "alice-pw");
  Login bob = login("bob", "bob-pw");
  std::string a_id(launch(alice, "calc")["X-Appvirt-Session-Id"]);
  std::string b_id(launch(bob, "calc")["X-Appvirt-Session-Id"]);
  auto list = call(bhttp::verb::get, "/api/v1/sessions", "", auth_headers(bob, false));
  auto sessions = nlohmann::json::parse(list.body())["sessions"];
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]["session_id"], b_id);
  EXPECT_EQ(sessions[0]["state"], "running");
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/sessions/" + a_id, "", auth_headers(bob)).result_int(), 404u);
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/sessions/" + b_id, "", auth_headers(bob, false)).result_int(), 403u);
  EXPECT_EQ(host_.logoffs, 0);
}

TEST_F(ApiTest, AdminApiIsForTheAdminGroupOnly) {
  Login alice = login("alice", "alice-pw");
  Login ada = login("ada", "ada-pw");
  std::string a_id(launch(alice, "calc")["X-Appvirt-Session-Id"]);
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/admin/sessions", "", auth_headers(alice)).result_int(), 403u);
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/admin/hosts", "", auth_headers(alice)).result_int(), 403u);
  auto all = call(bhttp::verb::get, "/api/v1/admin/sessions", "", auth_headers(ada, false));
  ASSERT_EQ(all.result_int(), 200u);
  EXPECT_EQ(nlohmann::json::parse(all.body())["sessions"].size(), 1u);
  auto hosts = call(bhttp::verb::get, "/api/v1/admin/hosts", "", auth_headers(ada, false));
  auto h = nlohmann::json::parse(hosts.body())["hosts"];
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]["name"], "local");
  EXPECT_EQ(h[0]["up"], true);
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/admin/sessions/" + a_id, "", auth_headers(ada, false)).result_int(), 403u);
  auto del = call(bhttp::verb::delete_, "/api/v1/admin/sessions/" + a_id, "", auth_headers(ada));
  ASSERT_EQ(del.result_int(), 200u) << del.body();
  EXPECT_EQ(host_.logoffs, 1);
  auto audit = call(bhttp::verb::get, "/api/v1/admin/audit", "", auth_headers(ada, false));
  EXPECT_NE(audit.body().find("admin_logoff"), std::string::npos);
}

TEST_F(ApiTest, LogoutEndsTheBrowserSession) {
  Login alice = login("alice", "alice-pw");
  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/logout", "", auth_headers(alice, false)).result_int(), 403u);
  auto out = call(bhttp::verb::post, "/api/v1/logout", "", auth_headers(alice));
  EXPECT_EQ(out.result_int(), 200u);
  EXPECT_NE(std::string(out[bhttp::field::set_cookie]).find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/apps", "", auth_headers(alice)).result_int(), 401u);
}

TEST_F(ApiTest, GatewayLogonSharesLockoutAndIssuesRedeemableToken) {
  auto logon = [&](const std::string& pw, std::string app) {
    nlohmann::json b = {{"username", "alice"}, {"password", pw}, {"client_address", "192.0.2.9"}};
    if (!app.empty()) b["app"] = app;
    return call(bhttp::verb::post, "/internal/v1/logon", b.dump(),
                {{"Authorization", "Bearer " + kGatewaySecret}});
  };
  auto ok = logon("alice-pw", "");
  ASSERT_EQ(ok.result_int(), 200u) << ok.body();
  auto j = nlohmann::json::parse(ok.body());
  EXPECT_EQ(j["app_id"], "xterm") << "first entitled app is the default";
  EXPECT_EQ(j["routing_token"], "Cookie: msts=" + j["token"].get<std::string>());
  EXPECT_EQ(redeem(j["token"]).result_int(), 200u);
  EXPECT_EQ(logon("alice-pw", "secret").result_int(), 403u);
  EXPECT_EQ(auth_.last_address, "192.0.2.9");
  EXPECT_EQ(logon("bad", "").result_int(), 401u);
  EXPECT_EQ(login_raw("alice", "bad").result_int(), 401u);
  EXPECT_EQ(logon("bad", "").result_int(), 401u);
  EXPECT_EQ(login_raw("alice", "alice-pw").result_int(), 429u) << "portal and gateway share lockout";
  EXPECT_EQ(logon("alice-pw", "").result_int(), 429u);
}

TEST_F(ApiTest, HostsRegisterReportAndGoDown) {
  auto reg = [&](const std::string& secret, nlohmann::json body) {
    return call(bhttp::verb::post, "/internal/v1/hosts/register", body.dump(),
                {{"Authorization", "Bearer " + secret}});
  };
  EXPECT_EQ(reg(kGatewaySecret, {{"name", "n2"}, {"capacity", 5}}).result_int(), 401u);
  EXPECT_EQ(reg(kHostSecret, {{"name", "local"}, {"capacity", 5}}).result_int(), 400u);
  EXPECT_EQ(reg(kHostSecret, {{"name", "n2"}, {"capacity", -1}}).result_int(), 400u);
  EXPECT_EQ(reg(kHostSecret, {{"name", "n2"}, {"capacity", 5}, {"x", 1}}).result_int(), 400u);
  auto ok = reg(kHostSecret, {{"name", "n2"}, {"socket", "/run/n2.sock"}, {"capacity", 5}});
  ASSERT_EQ(ok.result_int(), 200u) << ok.body();
  EXPECT_GE(nlohmann::json::parse(ok.body())["report_interval_seconds"].get<int>(), 1);
  auto report = [&](const std::string& name) {
    return call(bhttp::verb::post, "/internal/v1/hosts/" + name + "/load",
                "{\"sessions\":1,\"cpu_load\":0.5}", {{"Authorization", "Bearer " + kHostSecret}});
  };
  EXPECT_EQ(report("n2").result_int(), 200u);
  EXPECT_EQ(report("ghost").result_int(), 404u);
  EXPECT_TRUE(svc_->hosts().find("n2")->up);
  EXPECT_EQ(store_->list_hosts()->size(), 1u) << "registered hosts are persisted";
  auto later = std::chrono::steady_clock::now() + config_.host_report_timeout + std::chrono::seconds(1);
  svc_->hosts().expire(later);
  EXPECT_FALSE(svc_->hosts().find("n2")->up);
}

TEST_F(ApiTest, NoCapacityOrHostDownGives503) {
  host_.unreachable = true;
  testing::run_coro(io_, poll());
  EXPECT_FALSE(svc_->hosts().find("local")->up);
  Login alice = login("alice", "alice-pw");
  auto res = launch(alice, "calc");
  EXPECT_EQ(res.result_int(), 503u) << res.body();
  EXPECT_FALSE(res[bhttp::field::retry_after].empty());
}

TEST_F(ApiTest, HostRefusalGives502) {
  host_.launch_status = 400;
  Login alice = login("alice", "alice-pw");
  EXPECT_EQ(launch(alice, "calc").result_int(), 502u);
}

TEST_F(ApiTest, ReconcileEndsSessionsTheHostNoLongerRunsAndAdoptsUnknownOnes) {
  Login alice = login("alice", "alice-pw");
  std::string id(launch(alice, "calc")["X-Appvirt-Session-Id"]);
  host_.sessions[id].state = "ended";
  host_.sessions[id].end_reason = "app-exited";
  HostSession stray;
  stray.session_id = "stray1";
  stray.user = "bob";
  stray.app_id = "calc";
  stray.state = "running";
  host_.sessions["stray1"] = stray;
  testing::run_coro(io_, poll());
  auto s = store_->get_session(id);
  EXPECT_EQ((*s)->state, "ended");
  EXPECT_EQ((*s)->end_reason, "app-exited");
  auto adopted = store_->get_session("stray1");
  ASSERT_TRUE(adopted && *adopted);
  EXPECT_TRUE((*adopted)->secret.empty());
  auto again = launch(alice, "calc");
  EXPECT_EQ(again["X-Appvirt-Reused"], "false") << "an ended session is not reattached";
  EXPECT_EQ(host_.launches, 2);
}

TEST_F(ApiTest, ReattachChecksTheHostFirst) {
  Login alice = login("alice", "alice-pw");
  launch(alice, "calc");
  host_.sessions.clear();  // the host lost it (e.g. rebooted) before the broker polled
  auto res = launch(alice, "calc");
  EXPECT_EQ(res["X-Appvirt-Reused"], "false");
  EXPECT_EQ(host_.launches, 2);
}

TEST_F(ApiTest, PolicyNarrowsAppsCapsSessionsSizeAndSetsLimits) {
  auto set = policies::parse_policy_toml(R"(
[defaults]
memory_max = "1G"
max_resolution = "1024x768"
[groups.staff]
pids_max = 100
[users.alice]
max_sessions = 1
apps = ["xterm"]
idle_timeout = "30m"
[users.bob]
isolation = "vm"
)", "policies.toml");
  ASSERT_TRUE(set) << set.error().report();
  config_.policies = *set;
  start_service();
  Login alice = login("alice", "alice-pw");
  auto apps = call(bhttp::verb::get, "/api/v1/apps", "", auth_headers(alice, false));
  auto list = nlohmann::json::parse(apps.body())["apps"];
  ASSERT_EQ(list.size(), 1u) << apps.body();
  EXPECT_EQ(list[0]["id"], "xterm") << "the catalog allows calc too, the policy does not";
  EXPECT_EQ(launch(alice, "calc").result_int(), 403u);
  auto first = call(bhttp::verb::post, "/api/v1/apps/xterm/launch", "{\"width\":1920,\"height\":1200}",
                    auth_headers(alice));
  ASSERT_EQ(first.result_int(), 200u) << first.body();
  EXPECT_EQ(host_.last_launch.width, 1024) << "capped to max_resolution";
  EXPECT_EQ(host_.last_launch.height, 768);
  EXPECT_NE(first.body().find("desktopwidth:i:1024\r\n"), std::string::npos);
  EXPECT_EQ(host_.last_launch.limits["memory_max"], 1ull << 30);
  EXPECT_EQ(host_.last_launch.limits["pids_max"], 100);
  EXPECT_EQ(host_.last_launch.idle_timeout_s, 1800) << "the policy's timeouts go to hostd";
  EXPECT_EQ(host_.last_launch.disconnect_timeout_s, 3600) << "built-in default 1h";
  EXPECT_EQ(launch(alice, "xterm").result_int(), 200u) << "reattaching is not a new session";
  Login bob = login("bob", "bob-pw");
  auto vm = launch(bob, "calc");
  EXPECT_EQ(vm.result_int(), 503u) << "bob's policy wants a VM and no host offers one";
  EXPECT_NE(vm.body().find("vm"), std::string::npos) << vm.body();
}

TEST_F(ApiTest, SessionLimitFromPolicy) {
  auto set = policies::parse_policy_toml("[users.alice]\nmax_sessions = 1\n", "p.toml");
  ASSERT_TRUE(set);
  config_.policies = *set;
  start_service();
  Login alice = login("alice", "alice-pw");
  EXPECT_EQ(launch(alice, "xterm").result_int(), 200u);
  auto second = launch(alice, "calc");
  EXPECT_EQ(second.result_int(), 403u) << second.body();
  EXPECT_NE(second.body().find("session limit"), std::string::npos);
}

TEST_F(ApiTest, MetricsAndHealth) {
  login("alice", "alice-pw");
  login_raw("alice", "wrong");
  auto m = call(bhttp::verb::get, "/metrics");
  ASSERT_EQ(m.result_int(), 200u);
  EXPECT_NE(m.body().find("appvirt_broker_logins_total{channel=\"portal\",result=\"ok\"} 1"), std::string::npos) << m.body();
  EXPECT_NE(m.body().find("appvirt_broker_logins_total{channel=\"portal\",result=\"denied\"} 1"), std::string::npos);
  EXPECT_NE(m.body().find("appvirt_broker_hosts{state=\"up\"} 1"), std::string::npos);
  auto h = call(bhttp::verb::get, "/healthz");
  EXPECT_EQ(nlohmann::json::parse(h.body())["hosts_up"], 1);
}

TEST_F(ApiTest, DirectoryFailureOfAuthIs503AndDoesNotLockOut) {
  auth_.broken = true;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(login_raw("alice", "x").result_int(), 503u);
  auth_.broken = false;
  EXPECT_EQ(login_raw("alice", "alice-pw").result_int(), 200u);
}


// ---- issue 3 audit: behaviours the issue names, each checked where it can fail ----

TEST_F(ApiTest, LockoutPerSourceAddressAnswers429WithRetryAfter) {
  config_.lockout.max_failures_per_address = 4;
  start_service();
  // Four different (unknown) names from one address: no single user reaches its limit of 3.
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(login_raw("guess" + std::to_string(i), "x").result_int(), 401u);
  }
  int calls = auth_.calls;
  auto locked = login_raw("bob", "bob-pw");
  EXPECT_EQ(locked.result_int(), 429u) << locked.body();
  EXPECT_EQ(locked[bhttp::field::retry_after], std::to_string(config_.lockout.lockout.count()));
  EXPECT_EQ(auth_.calls, calls) << "a locked address does not reach PAM";
  // Another address is not locked.
  http::Router other = api_->router_for("10.9.9.9");
  auto ok = testing::send(io_, other, Call{bhttp::verb::post, "/api/v1/login",
                                           R"({"username":"bob","password":"bob-pw"})", {}});
  EXPECT_EQ(ok.result_int(), 200u) << ok.body();
}

// The documented routes and methods (docs/openapi.yaml), read line by line: "  /path:" then
// "    method:".
std::vector<std::pair<std::string, std::string>> openapi_operations() {
  std::ifstream in(APPVIRT_SOURCE_DIR "/docs/openapi.yaml");
  std::vector<std::pair<std::string, std::string>> ops;
  std::string line, path;
  bool in_paths = false;
  static const std::regex path_re(R"(^  (/[^:\s]*):\s*$)");
  static const std::regex method_re(R"(^    (get|put|post|delete|patch):)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line == "paths:") { in_paths = true; continue; }
    if (!in_paths) continue;
    if (!line.empty() && line[0] != ' ') break;  // the next top-level key
    if (std::regex_search(line, m, path_re)) path = m[1];
    else if (!path.empty() && std::regex_search(line, m, method_re)) ops.emplace_back(m[1], path);
  }
  return ops;
}

// A concrete target for a pattern: "{id}" → "p1".
std::string concrete(const std::string& pattern) {
  return std::regex_replace(pattern, std::regex(R"(\{[^}]+\})"), "p1");
}

bhttp::verb verb_of(const std::string& method) {
  return bhttp::string_to_verb(boost::algorithm::to_upper_copy(method));
}

TEST_F(ApiTest, OpenApiDescribesEveryRouteAndNothingElse) {
  auto ops = openapi_operations();
  ASSERT_GE(ops.size(), 17u) << "docs/openapi.yaml not found or not parsed";
  std::set<std::pair<std::string, std::string>> documented(ops.begin(), ops.end());
  for (const auto& [method, path] : ops) {
    auto m = router_.match(verb_of(method), concrete(path));
    EXPECT_NE(m.handler, nullptr) << "documented but not served: " << method << " " << path;
  }
  // The other direction: every API route the broker registers (add(r, V::<method>, "<path>", ...)
  // in broker/*.cc) is documented.
  static const std::regex add_re(R"re(add\(r,\s*V::(\w+),\s*"(/[^"]*)")re");
  int seen = 0;
  for (const auto& e : fs::directory_iterator(APPVIRT_SOURCE_DIR "/broker")) {
    if (e.path().extension() != ".cc") continue;
    std::ifstream in(e.path());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    for (std::sregex_iterator it(text.begin(), text.end(), add_re), end; it != end; ++it) {
      std::string method = (*it)[1] == "delete_" ? "delete" : std::string((*it)[1]);
      ++seen;
      EXPECT_TRUE(documented.count({method, (*it)[2]}))
          << method << " " << (*it)[2] << " is served but not in docs/openapi.yaml";
    }
  }
  EXPECT_GE(seen, 17);
}

TEST_F(ApiTest, EveryStateChangingPortalAndAdminRouteNeedsCsrf) {
  Login ada = login("ada", "ada-pw");  // an admin, so only the CSRF check can refuse
  Login alice = login("alice", "alice-pw");
  std::string id(launch(alice, "calc")["X-Appvirt-Session-Id"]);
  int checked = 0;
  for (const auto& [method, path] : openapi_operations()) {
    if (method == "get" || path.rfind("/api/v1/", 0) != 0 || path == "/api/v1/login") continue;
    std::string target = std::regex_replace(path, std::regex(R"(\{id\})"), id);
    target = concrete(target);
    for (bool wrong : {false, true}) {
      auto h = auth_headers(ada, wrong);
      if (wrong) h["X-CSRF-Token"] = alice.csrf;  // another session's token
      auto res = call(verb_of(method), target, "{}", h);
      EXPECT_EQ(res.result_int(), 403u) << method << " " << target << (wrong ? " (wrong token)" : " (none)")
                                        << ": " << res.body();
    }
    ++checked;
  }
  EXPECT_GE(checked, 4) << "logout, launch, logoff, admin logoff at least";
  EXPECT_EQ(host_.launches, 1);
  EXPECT_EQ(host_.logoffs, 0) << "nothing was logged off without a CSRF token";
  EXPECT_EQ(call(bhttp::verb::get, "/api/v1/me", "", auth_headers(ada, false)).result_int(), 200u)
      << "still signed in: logout without CSRF did nothing";
}

TEST_F(ApiTest, SilentHostGetsNoNewSessions) {
  config_.hosts[0].capacity = 1;
  start_service();
  Login alice = login("alice", "alice-pw");
  ASSERT_EQ(launch(alice, "calc").result_int(), 200u);  // fills "local"
  auto reg = call(bhttp::verb::post, "/internal/v1/hosts/register",
                  R"({"name":"n2","socket":"/run/n2.sock","capacity":5})",
                  {{"Authorization", "Bearer " + kHostSecret}});
  ASSERT_EQ(reg.result_int(), 200u) << reg.body();
  auto report = [&] {
    return call(bhttp::verb::post, "/internal/v1/hosts/n2/load", R"({"sessions":0})",
                {{"Authorization", "Bearer " + kHostSecret}}).result_int();
  };
  ASSERT_EQ(report(), 200u);
  Login bob = login("bob", "bob-pw");
  auto on_n2 = launch(bob, "calc");
  ASSERT_EQ(on_n2.result_int(), 200u) << on_n2.body();
  EXPECT_EQ((*store_->get_session(std::string(on_n2["X-Appvirt-Session-Id"])))->host, "n2");
  // n2 stops reporting: it is down and gets nothing; "local" is full, so there is no capacity.
  svc_->hosts().expire(std::chrono::steady_clock::now() + config_.host_report_timeout + std::chrono::seconds(1));
  ASSERT_FALSE(svc_->hosts().find("n2")->up);
  Login ada = login("ada", "ada-pw");
  EXPECT_EQ(launch(ada, "calc").result_int(), 503u);
  EXPECT_EQ(host_.launches, 2);
  // It reports again: back in the pool.
  ASSERT_EQ(report(), 200u);
  auto back = launch(ada, "calc");
  ASSERT_EQ(back.result_int(), 200u) << back.body();
  EXPECT_EQ((*store_->get_session(std::string(back["X-Appvirt-Session-Id"])))->host, "n2");
}

TEST_F(ApiTest, InternalSecretsAreNotInterchangeable) {
  auto as = [&](const std::string& secret, const std::string& target, const std::string& body) {
    return call(bhttp::verb::post, target, body, {{"Authorization", "Bearer " + secret}}).result_int();
  };
  EXPECT_EQ(as(kHostSecret, "/internal/v1/logon",
               R"({"username":"alice","password":"alice-pw","client_address":"192.0.2.1"})"), 401u);
  EXPECT_EQ(as(kGatewaySecret, "/internal/v1/hosts/register", R"({"name":"n3","capacity":1})"), 401u);
  EXPECT_EQ(as(kGatewaySecret, "/internal/v1/hosts/local/load", R"({"sessions":0})"), 401u);
  EXPECT_EQ(auth_.calls, 0) << "PAM is not reached with the wrong secret";
  // And a browser session is no credential for the internal API.
  Login alice = login("alice", "alice-pw");
  auto h = auth_headers(alice);
  EXPECT_EQ(call(bhttp::verb::post, "/internal/v1/tokens/redeem", R"({"token":"x"})", h).result_int(), 401u);
}

}  // namespace
}  // namespace appvirt::broker
