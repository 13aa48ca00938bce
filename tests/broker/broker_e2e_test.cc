// End to end (label e2e, needs root): the real appvirt-broker over HTTPS on a free port, real PAM
// (a copy of deploy/pam.d/appvirt under a private service name) with users created by the test,
// and the real appvirt-hostd (with appvirt-sandbox, appvirt-rdp, Xvfb) running
// appvirt-testpattern as the published app. rdp-probe checks that the endpoint the broker hands
// the gateway really shows the app.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>
#include <set>
#include <sstream>
#include <thread>

#include "common/http_client.h"
#include "tests/broker/broker_fixture.h"
#include "tests/broker/e2e_support.h"
#include "tests/tools/test_support.h"

namespace appvirt::broker::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::testing::Child;
using appvirt::testing::eventually;
using appvirt::testing::read_text_file;
using appvirt::testing::run_capture;
using Session = WebSession;

class BrokerE2eTest : public BrokerHostdTest {
 protected:
  BrokerE2eTest() : BrokerHostdTest({.dir = "broker-e2e", .prefix = "avb", .bob_is_staff = false}) {}

  void write_broker_config() override {
    std::ofstream(dir_ + "/gateway.secret") << std::string(48, 'G') << "\n";
    std::ofstream(dir_ + "/host.secret") << std::string(48, 'H') << "\n";
    auto gw = appvirt::testing::free_tcp_port();
    ASSERT_TRUE(gw);
    gateway_port_ = static_cast<uint16_t>(*gw);
    // A policy file the broker must apply: smaller screens and a memory limit for everyone.
    std::ofstream(dir_ + "/policies.toml") << "[defaults]\nmax_resolution = \"1024x768\"\n"
                                           << "memory_max = \"1G\"\n";
    std::ofstream out(dir_ + "/broker.toml");
    out << "state_dir = \"" << dir_ << "/broker\"\n"
        << "policy_file = \"" << dir_ << "/policies.toml\"\n"
        << "gateway_address = \"127.0.0.1:" << gateway_port_ << "\"\n"
        << "pam_service = \"" << pam_->name() << "\"\n"
        << "admin_group = \"" << admins_->name() << "\"\n"
        << "log_level = \"debug\"\n"
        << "[listen]\naddress = \"127.0.0.1\"\nport = 0\nmax_body_bytes = 8192\n"
        << "header_timeout_ms = 1500\nbody_timeout_ms = 1500\nhandshake_timeout_ms = 3000\n"
        << "max_connections = 8\n"
        << "[launch]\ntoken_ttl_seconds = 5\n"
        << "[lockout]\nmax_failures_per_user = 3\nlockout_seconds = 120\n"
        << "[internal]\ngateway_secret_file = \"" << dir_ << "/gateway.secret\"\n"
        << "host_secret_file = \"" << dir_ << "/host.secret\"\nhost_poll_interval_ms = 1000\n"
        << "host_report_timeout_seconds = 2\n"
        << "[[hosts]]\nname = \"local\"\nsocket = \"" << sock_ << "\"\ncapacity = 4\n"
        << "[[apps]]\nid = \"pattern\"\nname = \"Test pattern\"\n"
        << "command = [\"/bin/sh\", \"-c\", \"exec \\\"$HOME/appvirt-testpattern\\\" --variant 0\"]\n"
        << "groups = [\"" << staff_->name() << "\"]\n"
        << "[[apps]]\nid = \"pattern-all\"\nname = \"Pattern for all\"\n"
        << "command = [\"/bin/sh\", \"-c\", \"exec \\\"$HOME/appvirt-testpattern\\\" --variant 0\"]\n"
        << "users = [\"*\"]\n"
        << "[[apps]]\nid = \"root-only\"\ncommand = [\"/bin/true\"]\nusers = [\"root\"]\n";
  }

  Reply login_raw(const TempUser& u, const std::string& password) {
    return must(https(port_, "POST", "/api/v1/login",
                      nlohmann::json{{"username", u.name()}, {"password", password}}.dump()));
  }

  Reply launch(const Session& s, const std::string& app) {
    return must(https(port_, "POST", "/api/v1/apps/" + app + "/launch", "", as(s)));
  }

  static std::string token_of(const Reply& rdp) { return token_of_rdp_file(rdp.body); }

  Reply redeem(const std::string& token) {
    Options o;
    o.headers["Authorization"] = "Bearer " + std::string(48, 'G');
    return must(https(port_, "POST", "/internal/v1/tokens/redeem",
                      nlohmann::json{{"token", token}}.dump(), o));
  }

  std::string hostd_state(const std::string& id) {
    auto r = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions/" + id, "", 5s);
    if (!r || r->status != 200) return "?";
    return nlohmann::json::parse(r->body).value("state", "?");
  }

  uint16_t gateway_port_ = 0;
};

TEST_F(BrokerE2eTest, LoginLaunchRedeemReattachAndLogoff) {
  Reply signed_in = login_raw(*alice_, alice_->password());
  ASSERT_EQ(signed_in.status, 200u) << signed_in.body;
  for (const char* attr : {"; HttpOnly", "; Secure", "; SameSite=Strict", "; Path=/"}) {
    EXPECT_NE(signed_in.header("set-cookie").find(attr), std::string::npos)
        << attr << " missing in " << signed_in.header("set-cookie");
  }
  Session alice = login(*alice_);
  ASSERT_FALSE(alice.cookie.empty());
  Reply apps = must(https(port_, "GET", "/api/v1/apps", "", as(alice, false)));
  ASSERT_EQ(apps.status, 200u) << apps.body;
  auto list = nlohmann::json::parse(apps.body)["apps"];
  ASSERT_EQ(list.size(), 2u) << apps.body;
  EXPECT_EQ(list[0]["id"], "pattern");
  EXPECT_EQ(list[1]["id"], "pattern-all");

  Reply rdp = launch(alice, "pattern");
  ASSERT_EQ(rdp.status, 200u) << rdp.body << broker_log();
  EXPECT_EQ(rdp.header("content-type"), "application/x-rdp");
  EXPECT_EQ(rdp.header("content-disposition"), "attachment; filename=\"pattern.rdp\"");
  EXPECT_NE(rdp.body.find("full address:s:127.0.0.1:" + std::to_string(gateway_port_) + "\r\n"),
            std::string::npos) << rdp.body;
  EXPECT_NE(rdp.body.find("username:s:" + alice_->name() + "\r\n"), std::string::npos);
  EXPECT_NE(rdp.body.find("desktopwidth:i:1024\r\n"), std::string::npos)
      << "launch.width 1280 capped by the policy's max_resolution";
  std::string id = rdp.header("x-appvirt-session-id");
  std::string token = token_of(rdp);
  ASSERT_EQ(token.size(), 43u) << rdp.body;
  EXPECT_EQ(hostd_state(id), "running");
  {
    // The policy's limits reached hostd with the launch.
    auto on_host = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions/" + id, "", 5s);
    ASSERT_TRUE(on_host && on_host->status == 200);
    nlohmann::json j = nlohmann::json::parse(on_host->body);
    EXPECT_EQ(j["limits"].value("memory_max", 0ull), 1ull << 30) << on_host->body;
    EXPECT_EQ(j.value("width", 0), 1024);
  }

  // A real client opens the file: xfreerdp connects to the gateway address and sends the token as
  // the X.224 cookie the gateway routes on.
  {
    X224Catcher gateway;
    ASSERT_TRUE(gateway.listen(gateway_port_));
    std::ofstream(dir_ + "/pattern.rdp") << rdp.body;
    auto x = appvirt::testing::Xvfb::start(dir_, 800, 600);
    ASSERT_TRUE(x) << x.error().str();
    appvirt::testing::SpawnOptions o;
    o.env = x->client_env();
    o.env["HOME"] = dir_;
    o.stdout_file = dir_ + "/xfreerdp.log";
    o.stderr_file = dir_ + "/xfreerdp.log";
    auto client = Child::spawn({"xfreerdp", dir_ + "/pattern.rdp", "/cert:ignore"}, o);
    ASSERT_TRUE(client) << client.error().str();
    auto cookie = gateway.cookie(20s);
    ASSERT_TRUE(cookie) << cookie.error().str() << read_text_file(dir_ + "/xfreerdp.log");
    EXPECT_EQ(*cookie, "Cookie: msts=" + token);
  }

  // The gateway's side: the token gives the endpoint and its secret, once.
  Reply redeemed = redeem(token);
  ASSERT_EQ(redeemed.status, 200u) << redeemed.body;
  auto r = nlohmann::json::parse(redeemed.body);
  EXPECT_EQ(r["session_id"], id);
  EXPECT_EQ(r["user"], alice_->name());
  EXPECT_EQ(redeem(token).status, 404u) << "a launch token is single use";
  // The endpoint really shows the app to whoever holds the secret the broker handed out.
  auto probe = run_capture({RDP_PROBE, r["endpoint"]["unix"].get<std::string>(), "--cookie",
                            "Cookie: msts=" + r["secret"].get<std::string>(), "--lossless",
                            "--expect-pattern", "0", "--wait-match", "--timeout-ms", "30000"},
                           45s);
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->exit_code, 0) << probe->out;

  // A second launch of the same app reattaches: same session, fresh token.
  Reply again = launch(alice, "pattern");
  ASSERT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(again.header("x-appvirt-session-id"), id);
  EXPECT_EQ(again.header("x-appvirt-reused"), "true");
  std::string token2 = token_of(again);
  EXPECT_NE(token2, token);
  std::this_thread::sleep_for(6s);  // token_ttl_seconds = 5
  EXPECT_EQ(redeem(token2).status, 404u) << "an expired token is refused";

  Reply mine = must(https(port_, "GET", "/api/v1/sessions", "", as(alice, false)));
  auto sessions = nlohmann::json::parse(mine.body)["sessions"];
  ASSERT_EQ(sessions.size(), 1u) << mine.body;
  EXPECT_EQ(sessions[0]["session_id"], id);
  // The probe has left: hostd reports no client connected, so the directory says disconnected.
  EXPECT_EQ(sessions[0]["state"], "disconnected");

  // Admins see everyone's sessions and the hosts; others do not.
  Session ada = login(*ada_);
  EXPECT_EQ(must(https(port_, "GET", "/api/v1/admin/sessions", "", as(alice))).status, 403u);
  Reply all = must(https(port_, "GET", "/api/v1/admin/sessions", "", as(ada)));
  EXPECT_EQ(nlohmann::json::parse(all.body)["sessions"].size(), 1u) << all.body;
  // With the next host poll (1 s here) the admin view carries the session's limits and usage.
  nlohmann::json res;
  EXPECT_TRUE(eventually([&] {
    Reply r = must(https(port_, "GET", "/api/v1/admin/sessions", "", as(ada)));
    res = nlohmann::json::parse(r.body)["sessions"][0]["resources"];
    return res.is_object() && res.contains("usage");
  })) << res.dump();
  if (res.is_object() && res.contains("usage")) {
    EXPECT_GT(res["usage"]["memory_bytes"].get<uint64_t>(), 1u << 20) << res.dump();
  }
  Reply hosts = must(https(port_, "GET", "/api/v1/admin/hosts", "", as(ada)));
  auto h = nlohmann::json::parse(hosts.body)["hosts"];
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]["up"], true);

  // Logoff through the broker ends the session on the host.
  Reply off = must(https(port_, "DELETE", "/api/v1/sessions/" + id, "", as(alice)));
  ASSERT_EQ(off.status, 200u) << off.body;
  EXPECT_EQ(nlohmann::json::parse(off.body)["state"], "ended");
  EXPECT_TRUE(eventually([&] { return hostd_state(id) == "ended"; }));
  Reply after = launch(alice, "pattern");
  ASSERT_EQ(after.status, 200u) << after.body;
  EXPECT_NE(after.header("x-appvirt-session-id"), id) << "a logged-off session is not reattached";

  Reply metrics = must(https(port_, "GET", "/metrics"));
  EXPECT_NE(metrics.body.find("appvirt_broker_launches_total{result=\"reattached\"} 1"), std::string::npos)
      << metrics.body;
  std::string log = broker_log();
  EXPECT_EQ(log.find(alice_->password()), std::string::npos) << "a password reached the log";
  EXPECT_EQ(log.find(token), std::string::npos) << "a launch token reached the log";
  EXPECT_EQ(log.find(r["secret"].get<std::string>()), std::string::npos) << "a session secret reached the log";
  EXPECT_EQ(log.find(alice.cookie), std::string::npos) << "a session cookie reached the log";
  EXPECT_EQ(log.find(alice.csrf), std::string::npos) << "a CSRF token reached the log";
  EXPECT_EQ(log.find(token2), std::string::npos) << "a launch token reached the log";
  EXPECT_NE(log.find("event=launch"), std::string::npos) << "the log does record launches";
}

TEST_F(BrokerE2eTest, WrongPasswordLockoutAndEntitlement) {
  EXPECT_EQ(login_raw(*alice_, "not-the-password").status, 401u);
  Reply unknown = must(https(port_, "POST", "/api/v1/login", "{\"username\":\"no-such-user-x\",\"password\":\"x\"}"));
  EXPECT_EQ(unknown.status, 401u);
  EXPECT_EQ(login_raw(*alice_, "still-wrong").status, 401u);
  EXPECT_EQ(login_raw(*alice_, "wrong-again").status, 401u);
  Reply locked = login_raw(*alice_, alice_->password());
  EXPECT_EQ(locked.status, 429u) << locked.body;
  EXPECT_GT(std::stoi(locked.header("retry-after").empty() ? "0" : locked.header("retry-after")), 0);

  Session bob = login(*bob_);
  Reply denied = launch(bob, "pattern");
  EXPECT_EQ(denied.status, 403u) << denied.body;
  EXPECT_EQ(launch(bob, "root-only").status, 403u);
  EXPECT_EQ(launch(bob, "no-such-app").status, 404u);
  Reply apps = must(https(port_, "GET", "/api/v1/apps", "", as(bob, false)));
  EXPECT_EQ(nlohmann::json::parse(apps.body)["apps"].size(), 1u) << apps.body;
  std::string log = broker_log();
  EXPECT_NE(log.find("event=lockout user=" + alice_->name()), std::string::npos);
  for (const char* pw : {"not-the-password", "still-wrong", "wrong-again"}) {
    EXPECT_EQ(log.find(pw), std::string::npos) << "a (wrong) password reached the log: " << pw;
  }
  EXPECT_EQ(log.find(alice_->password()), std::string::npos) << "a password reached the log";
}

TEST_F(BrokerE2eTest, RequestHardening) {
  Session bob = login(*bob_);
  // Missing CSRF header on a state-changing request.
  EXPECT_EQ(must(https(port_, "POST", "/api/v1/apps/pattern-all/launch", "", as(bob, false))).status, 403u);
  EXPECT_EQ(must(https(port_, "POST", "/api/v1/logout", "", as(bob, false))).status, 403u);
  // Malformed JSON.
  EXPECT_EQ(must(https(port_, "POST", "/api/v1/login", "{\"username\": \"x\",")).status, 400u);
  // Oversized body: refused from Content-Length before it is read.
  // (A little over the limit: the server closes right after its answer, and a much larger unread
  // remainder would turn that close into a reset that can swallow the answer.)
  std::string big(9000, 'a');
  EXPECT_EQ(must(https(port_, "POST", "/api/v1/login", "{\"username\":\"" + big + "\"}")).status, 413u);
  // Internal API without its secret.
  EXPECT_EQ(must(https(port_, "POST", "/internal/v1/tokens/redeem", "{\"token\":\"x\"}")).status, 401u);
  // A slow client (half a header, then nothing) is cut off after header_timeout_ms.
  auto slow = raw_tls(port_, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 10s);
  ASSERT_TRUE(slow);
  EXPECT_TRUE(slow->closed) << "still open after 10 s";
  EXPECT_LT(slow->closed_after, 5s);
  EXPECT_GE(slow->closed_after, 1s);
  EXPECT_NE(slow->received.find(" 408 "), std::string::npos) << slow->received;
  // A slow body (headers complete, half the announced body, then nothing): body_timeout_ms.
  auto slow_body = raw_tls(port_, "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 100\r\n\r\n{\"username\":", 10s);
  ASSERT_TRUE(slow_body);
  EXPECT_TRUE(slow_body->closed) << "still open after 10 s";
  EXPECT_LT(slow_body->closed_after, 5s);
  EXPECT_GE(slow_body->closed_after, 1s);
  EXPECT_NE(slow_body->received.find(" 408 "), std::string::npos) << slow_body->received;
  // A client that never starts TLS is dropped after handshake_timeout_ms.
  auto silent = silent_tcp(port_, 10s);
  ASSERT_TRUE(silent);
  EXPECT_TRUE(silent->closed);
  EXPECT_LT(silent->closed_after, 5s);
  // Connections are capped (handshakes included): with 8 held open, the 9th is closed at once.
  {
    boost::asio::io_context io;
    std::vector<boost::asio::ip::tcp::socket> held;
    for (int i = 0; i < 8; ++i) {
      held.emplace_back(io);
      boost::system::error_code ec;
      held.back().connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
      ASSERT_FALSE(ec) << ec.message();
    }
    std::this_thread::sleep_for(300ms);  // let the broker accept them
    auto ninth = silent_tcp(port_, 10s);
    ASSERT_TRUE(ninth);
    EXPECT_TRUE(ninth->closed);
    EXPECT_LT(ninth->closed_after, 1500ms) << "not refused at once (handshake timeout is 3 s)";
  }
  // TLS below 1.2 is refused.
  Options old;
  old.max_tls_version = TLS1_1_VERSION;
  auto r = https(port_, "GET", "/healthz", "", old);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("handshake"), std::string::npos) << r.error().message;
  // After all that the broker still serves (once the held connections are gone).
  EXPECT_TRUE(eventually([&] {
    auto r = https(port_, "GET", "/healthz");
    return r && r->status == 200;
  }, 10s));
}

TEST_F(BrokerE2eTest, RestartKeepsTheSessionDirectory) {
  Session bob = login(*bob_);
  Reply first = launch(bob, "pattern-all");
  ASSERT_EQ(first.status, 200u) << first.body << broker_log();
  std::string id = first.header("x-appvirt-session-id");
  stop_broker();
  EXPECT_TRUE(fs::exists(dir_ + "/broker/broker.db"));
  start_broker();
  // Browser sessions do not survive a restart; the session directory does.
  EXPECT_EQ(must(https(port_, "GET", "/api/v1/sessions", "", as(bob, false))).status, 401u);
  bob = login(*bob_);
  Reply mine = must(https(port_, "GET", "/api/v1/sessions", "", as(bob, false)));
  auto sessions = nlohmann::json::parse(mine.body)["sessions"];
  ASSERT_EQ(sessions.size(), 1u) << mine.body;
  EXPECT_EQ(sessions[0]["session_id"], id);
  Reply again = launch(bob, "pattern-all");
  ASSERT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(again.header("x-appvirt-session-id"), id);
  EXPECT_EQ(again.header("x-appvirt-reused"), "true");
  EXPECT_EQ(redeem(token_of(again)).status, 200u);
}

TEST_F(BrokerE2eTest, SessionEndedOnHostWhileBrokerWasDownShowsEndedAfterRestart) {
  Session bob = login(*bob_);
  Reply first = launch(bob, "pattern-all");
  ASSERT_EQ(first.status, 200u) << first.body << broker_log();
  std::string id = first.header("x-appvirt-session-id");
  ASSERT_EQ(hostd_state(id), "running");
  stop_broker();
  // Behind the broker's back: the session is logged off on hostd directly.
  auto off = http::unix_request(sock_, http::bhttp::verb::delete_, "/v1/sessions/" + id, "", 30s);
  ASSERT_TRUE(off && off->status == 200) << (off ? off->body : off.error().str());
  ASSERT_TRUE(eventually([&] { return hostd_state(id) == "ended"; }));
  start_broker();  // reconciles with hostd at start
  bob = login(*bob_);
  auto state_in_broker = [&] {
    Reply r = must(https(port_, "GET", "/api/v1/sessions?include_ended=true", "", as(bob, false)));
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object()) return std::string("?");
    for (const auto& s : j["sessions"]) {
      if (s["session_id"] == id) return s.value("state", std::string("?"));
    }
    return std::string("missing");
  };
  EXPECT_TRUE(eventually([&] { return state_in_broker() == "ended"; }, 10s)) << state_in_broker();
  Reply live = must(https(port_, "GET", "/api/v1/sessions", "", as(bob, false)));
  EXPECT_EQ(nlohmann::json::parse(live.body)["sessions"].size(), 0u) << live.body;
  Reply again = launch(bob, "pattern-all");
  ASSERT_EQ(again.status, 200u) << again.body;
  EXPECT_NE(again.header("x-appvirt-session-id"), id) << "an ended session is not reattached";
  EXPECT_EQ(again.header("x-appvirt-reused"), "false");
}

TEST_F(BrokerE2eTest, GatewayLogonAndHostRegistration) {
  Options gw;
  gw.headers["Authorization"] = "Bearer " + std::string(48, 'G');
  nlohmann::json logon = {{"username", bob_->name()}, {"password", "wrong"}, {"client_address", "192.0.2.10"}};
  EXPECT_EQ(must(https(port_, "POST", "/internal/v1/logon", logon.dump(), gw)).status, 401u);
  logon["password"] = bob_->password();
  EXPECT_EQ(must(https(port_, "POST", "/internal/v1/logon", logon.dump())).status, 401u)
      << "the internal API needs the gateway secret";
  Reply ok = must(https(port_, "POST", "/internal/v1/logon", logon.dump(), gw));
  ASSERT_EQ(ok.status, 200u) << ok.body << broker_log();
  auto j = nlohmann::json::parse(ok.body);
  EXPECT_EQ(j["app_id"], "pattern-all") << "bob's first entitled app";
  EXPECT_EQ(j["routing_token"], "Cookie: msts=" + j["token"].get<std::string>());
  Reply redeemed = redeem(j["token"]);
  ASSERT_EQ(redeemed.status, 200u) << redeemed.body;
  EXPECT_EQ(nlohmann::json::parse(redeemed.body)["user"], bob_->name());

  // A host registers (the same hostd under a second name), reports, then falls silent.
  Options host;
  host.headers["Authorization"] = "Bearer " + std::string(48, 'H');
  nlohmann::json reg = {{"name", "reg1"}, {"socket", sock_}, {"capacity", 2}};
  EXPECT_EQ(must(https(port_, "POST", "/internal/v1/hosts/register", reg.dump(), gw)).status, 401u);
  Reply registered = must(https(port_, "POST", "/internal/v1/hosts/register", reg.dump(), host));
  ASSERT_EQ(registered.status, 200u) << registered.body;
  Reply load = must(https(port_, "POST", "/internal/v1/hosts/reg1/load", "{\"sessions\":0,\"cpu_load\":0.1}", host));
  EXPECT_EQ(load.status, 200u) << load.body;
  Session ada = login(*ada_);
  auto reg1_up = [&] {
    Reply hosts = must(https(port_, "GET", "/api/v1/admin/hosts", "", as(ada)));
    nlohmann::json parsed = nlohmann::json::parse(hosts.body, nullptr, false);
    if (!parsed.is_object()) return false;
    for (const auto& h : parsed["hosts"]) {
      if (h["name"] == "reg1") return h["up"].get<bool>();
    }
    return false;
  };
  EXPECT_TRUE(reg1_up()) << must(https(port_, "GET", "/api/v1/admin/hosts", "", as(ada))).body;
  EXPECT_TRUE(eventually([&] { return !reg1_up(); }, 8s)) << "a silent host must go down";
}

TEST(BrokerCli, CheckConfigReportsFileLineAndKey) {
  char tmpl[] = "/tmp/broker-cli-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::ofstream(dir + "/bad.toml") << "log_level = \"info\"\n[listen]\nport = \"x\"\nbogus = 1\n";
  std::ofstream(dir + "/good.toml") << "[[apps]]\nid = \"a\"\ncommand = [\"/bin/true\"]\nusers = [\"*\"]\n";
  appvirt::testing::SpawnOptions o;
  o.stderr_file = dir + "/err";
  auto bad = run_capture({APPVIRT_BROKER, "--config", dir + "/bad.toml", "--check-config"}, 10s, o);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->exit_code, 2);
  std::string err = read_text_file(dir + "/err");
  EXPECT_NE(err.find(dir + "/bad.toml:3: listen.port: must be an integer"), std::string::npos) << err;
  EXPECT_NE(err.find(dir + "/bad.toml:4: listen.bogus: unknown key"), std::string::npos) << err;
  auto good = run_capture({APPVIRT_BROKER, "--config", dir + "/good.toml", "--check-config"}, 10s);
  ASSERT_TRUE(good);
  EXPECT_EQ(good->exit_code, 0) << good->out;
  auto help = run_capture({APPVIRT_BROKER, "--help"}, 10s);
  ASSERT_TRUE(help);
  EXPECT_EQ(help->exit_code, 0);
  EXPECT_NE(help->out.find("--check-config"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace appvirt::broker::e2e
