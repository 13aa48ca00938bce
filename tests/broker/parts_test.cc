// Unit tests of the broker's small parts: tokens and hashing, the login throttle, .rdp files,
// browser sessions, the host registry and placement, metrics text.
#include <gtest/gtest.h>

#include <set>

#include "broker/crypto.h"
#include "broker/host_registry.h"
#include "broker/login_throttle.h"
#include "broker/metrics.h"
#include "broker/rdp_file.h"
#include "broker/web_sessions.h"

namespace appvirt::broker {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Crypto, TokensAreLongRandomAndUrlSafe) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto t = random_token(32);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->size(), 43u);  // 256 bits in unpadded base64url
    EXPECT_TRUE(is_token_syntax(*t)) << *t;
    EXPECT_TRUE(seen.insert(*t).second) << "duplicate token";
  }
  auto short_token = random_token(16);
  ASSERT_TRUE(short_token);
  EXPECT_EQ(short_token->size(), 22u);  // 128 bits
}

TEST(Crypto, Sha256MatchesKnownVector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, ConstantTimeEqualAndSyntax) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(is_token_syntax("short"));
  EXPECT_FALSE(is_token_syntax("has space in the middle of it"));
  EXPECT_FALSE(is_token_syntax(std::string(200, 'a')));
  EXPECT_FALSE(is_token_syntax("abcdefghijklmnop\r\nCookie: x"));
}

TEST(LoginThrottle, LocksUserAfterMaxFailuresAndUnlocksAfterLockout) {
  LoginThrottle t(ThrottleLimits{3, 100, 60s, 30s, 1000});
  auto now = Clock::now();
  EXPECT_FALSE(t.retry_after("alice", "10.0.0.1", now));
  EXPECT_FALSE(t.record_failure("alice", "10.0.0.1", now));
  EXPECT_FALSE(t.record_failure("alice", "10.0.0.2", now + 1s));
  EXPECT_FALSE(t.retry_after("alice", "10.0.0.3", now + 2s));
  EXPECT_TRUE(t.record_failure("alice", "10.0.0.3", now + 2s));  // third: lockout starts
  auto wait = t.retry_after("alice", "10.0.0.9", now + 2s);
  ASSERT_TRUE(wait);
  EXPECT_EQ(wait->count(), 30);
  EXPECT_FALSE(t.retry_after("bob", "10.0.0.9", now + 2s)) << "other users are not affected";
  EXPECT_TRUE(t.retry_after("alice", "10.0.0.9", now + 31s)) << "locked until 2 s + 30 s";
  EXPECT_TRUE(t.retry_after("alice", "10.0.0.9", now + 33s) == std::nullopt);
}

TEST(LoginThrottle, FailuresOutsideTheWindowDoNotCount) {
  LoginThrottle t(ThrottleLimits{3, 100, 60s, 30s, 1000});
  auto now = Clock::now();
  t.record_failure("alice", "a", now);
  t.record_failure("alice", "a", now + 10s);
  EXPECT_FALSE(t.record_failure("alice", "a", now + 71s));  // the first fell out of the window
  EXPECT_FALSE(t.retry_after("alice", "a", now + 71s));
}

TEST(LoginThrottle, LocksAddressAcrossUsers) {
  LoginThrottle t(ThrottleLimits{100, 4, 60s, 30s, 1000});
  auto now = Clock::now();
  for (int i = 0; i < 4; ++i) t.record_failure("user" + std::to_string(i), "192.0.2.7", now);
  EXPECT_TRUE(t.retry_after("newuser", "192.0.2.7", now));
  EXPECT_FALSE(t.retry_after("newuser", "192.0.2.8", now));
}

TEST(LoginThrottle, SuccessClearsUserButNotAddress) {
  LoginThrottle t(ThrottleLimits{3, 3, 60s, 30s, 1000});
  auto now = Clock::now();
  t.record_failure("alice", "x", now);
  t.record_failure("bob", "x", now);
  t.record_success("alice", now);
  EXPECT_FALSE(t.record_failure("alice", "y", now));  // alice starts again from zero
  EXPECT_TRUE(t.record_failure("carol", "x", now));   // address x: third failure
}

TEST(LoginThrottle, TableStaysBounded) {
  LoginThrottle t(ThrottleLimits{5, 1000000, 60s, 30s, 100});
  auto now = Clock::now();
  for (int i = 0; i < 1000; ++i) t.record_failure("u" + std::to_string(i), "a", now + std::chrono::milliseconds(i));
  EXPECT_LE(t.tracked_keys(), 101u);
}

TEST(RdpFile, HasTheKeysClientsNeed) {
  std::string f = render_rdp_file({"gw.example.com:3389", "TOKEN123", "alice", "XTerm", 1024, 768});
  EXPECT_NE(f.find("full address:s:gw.example.com:3389\r\n"), std::string::npos) << f;
  EXPECT_NE(f.find("loadbalanceinfo:s:Cookie: msts=TOKEN123\r\n"), std::string::npos);
  EXPECT_NE(f.find("username:s:alice\r\n"), std::string::npos);
  EXPECT_NE(f.find("screen mode id:i:1\r\n"), std::string::npos);
  EXPECT_NE(f.find("desktopwidth:i:1024\r\n"), std::string::npos);
  EXPECT_NE(f.find("desktopheight:i:768\r\n"), std::string::npos);
  EXPECT_NE(f.find("session bpp:i:32\r\n"), std::string::npos);
  EXPECT_NE(f.find("remoteapplicationmode:i:0\r\n"), std::string::npos);
  EXPECT_NE(f.find("enablecredsspsupport:i:0\r\n"), std::string::npos);
  // Every line is key:type:value.
  std::size_t pos = 0;
  while (pos < f.size()) {
    std::size_t end = f.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos);
    std::string line = f.substr(pos, end - pos);
    EXPECT_TRUE(line.find(":s:") != std::string::npos || line.find(":i:") != std::string::npos) << line;
    pos = end + 2;
  }
}

TEST(RdpFile, ValuesCannotInjectLines) {
  std::string f = render_rdp_file({"gw\r\nalternate shell:s:evil", "T", "bob\n", "App\r\n", 800, 600});
  EXPECT_EQ(f.find("\r\nalternate shell"), std::string::npos);
  EXPECT_NE(f.find("full address:s:gwalternate shell:s:evil\r\n"), std::string::npos);
  EXPECT_EQ(rdp_file_name("x/../y \"z"), "x_.._y__z.rdp");
}

TEST(WebSessions, CookieFindsSessionUntilIdleOrTtl) {
  WebSessionTable t(100s, 10s, 1000);
  auto now = Clock::now();
  WebSession s;
  s.user = "alice";
  auto c = t.create(s, now);
  ASSERT_TRUE(c);
  EXPECT_TRUE(is_token_syntax(c->cookie));
  EXPECT_TRUE(is_token_syntax(c->session->csrf_token));
  EXPECT_NE(c->cookie, c->session->csrf_token);
  ASSERT_NE(t.find(c->cookie, now + 5s), nullptr);
  ASSERT_NE(t.find(c->cookie, now + 14s), nullptr) << "use refreshes the idle timer";
  EXPECT_EQ(t.find(c->cookie, now + 25s), nullptr) << "idle for 11 s";
  auto d = t.create(s, now);
  for (int i = 1; i < 12; ++i) ASSERT_NE(t.find(d->cookie, now + std::chrono::seconds(i * 9)), nullptr);
  EXPECT_EQ(t.find(d->cookie, now + 108s), nullptr) << "absolute TTL";
  EXPECT_EQ(t.find("not-a-cookie", now), nullptr);
}

TEST(WebSessions, LogoutAndEviction) {
  WebSessionTable t(100s, 100s, 2);
  auto now = Clock::now();
  WebSession s;
  s.user = "u";
  auto a = t.create(s, now);
  auto b = t.create(s, now + 1s);
  auto c = t.create(s, now + 2s);  // evicts a, the least recently used
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(a->cookie, now + 3s), nullptr);
  EXPECT_NE(t.find(b->cookie, now + 3s), nullptr);
  t.remove(c->cookie);
  EXPECT_EQ(t.find(c->cookie, now + 3s), nullptr);
}

HostRecord host(std::string name, int capacity, std::string socket = "/run/h.sock") {
  return HostRecord{std::move(name), std::move(socket), capacity, false, "container", 0, "{}"};
}

TEST(HostRegistry, PicksLeastLoadedUpHostWithCapacity) {
  HostRegistry r(15s);
  auto now = Clock::now();
  r.add_configured(host("a", 10));
  r.add_configured(host("b", 4));
  EXPECT_FALSE(r.pick(Isolation::container, {})) << "configured hosts are down until probed";
  r.probe_ok("a", 5, now);
  r.probe_ok("b", 1, now);
  EXPECT_EQ(r.pick(Isolation::container, {})->name, "b");  // 1/4 < 5/10
  EXPECT_EQ(r.pick(Isolation::container, {{"b", 3}})->name, "a");  // broker knows 3 on b
  EXPECT_EQ(r.pick(Isolation::container, {{"a", 10}, {"b", 4}}), std::nullopt) << "all full";
  EXPECT_EQ(r.pick(Isolation::vm, {}), std::nullopt) << "no host offers VMs";
  r.probe_failed("b", "connect refused");
  EXPECT_EQ(r.pick(Isolation::container, {})->name, "a");
}

TEST(HostRegistry, RegisteredHostGoesDownWhenItStopsReporting) {
  HostRegistry r(15s);
  auto now = Clock::now();
  ASSERT_TRUE(r.register_host(host("n1", 5), now));
  EXPECT_TRUE(r.report("n1", 2, "{\"sessions\":2}", now + 5s));
  EXPECT_TRUE(r.expire(now + 19s).empty());
  EXPECT_EQ(r.pick(Isolation::container, {})->name, "n1");
  auto down = r.expire(now + 21s);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_FALSE(r.find("n1")->up);
  EXPECT_EQ(r.pick(Isolation::container, {}), std::nullopt);
  EXPECT_TRUE(r.report("n1", 0, "{}", now + 22s));
  EXPECT_TRUE(r.find("n1")->up);
  EXPECT_FALSE(r.report("ghost", 0, "{}", now)) << "unregistered hosts cannot report";
}

TEST(HostRegistry, ConfiguredNamesCannotBeTakenOver) {
  HostRegistry r(15s);
  r.add_configured(host("local", 5));
  EXPECT_FALSE(r.register_host(host("local", 500, "/tmp/evil.sock"), Clock::now()));
  EXPECT_EQ(r.find("local")->record.socket, "/run/h.sock");
}

TEST(HostRegistry, IsolationList) {
  HostRecord h = host("x", 1);
  h.isolation = "container,vm";
  EXPECT_TRUE(host_supports(h, Isolation::vm));
  EXPECT_TRUE(host_supports(h, Isolation::container));
  h.isolation = "vmx";
  EXPECT_FALSE(host_supports(h, Isolation::vm));
}

TEST(Metrics, RendersPrometheusText) {
  Metrics m;
  m.describe("x_total", "counter", "Things.");
  m.describe("y", "gauge", "Level.");
  m.inc("x_total", {{"result", "ok"}});
  m.inc("x_total", {{"result", "ok"}}, 2);
  m.set("y", {{"state", "a\"b"}}, 1.5);
  std::string t = m.render();
  EXPECT_NE(t.find("# TYPE x_total counter\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_total{result=\"ok\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("y{state=\"a\\\"b\"} 1.5\n"), std::string::npos) << t;
  EXPECT_EQ(m.counter("x_total", {{"result", "ok"}}), 3u);
}

}  // namespace
}  // namespace appvirt::broker
