// libFuzzer target: bytes from the network as one HTTP request to the broker. The request goes
// through Beast's parser with the broker's limits and then through the broker's real router,
// handlers, service, throttle and store (a fresh SQLite file per input), with fakes for PAM, NSS
// and hostd. A signed-in session's cookie and CSRF token are added to requests that carry none,
// so the authenticated handlers (launch, sessions, admin) are reached too.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "broker/api.h"
#include "broker/sqlite_store.h"
#include "tests/broker/fakes.h"

namespace {

using namespace appvirt;
using namespace appvirt::broker;
namespace bhttp = boost::beast::http;

struct World {
  World() {
    spdlog::set_level(spdlog::level::off);  // audit lines for every input would drown the fuzzer
    char tmpl[] = "/tmp/broker-fuzz-XXXXXX";
    dir = ::mkdtemp(tmpl);
    config.hosts.push_back({"local", "/run/fuzz.sock", 1000});
    auth.passwords = {{"alice", "pw"}, {"ada", "pw"}};
    users.groups = {{"alice", {"alice", "staff"}}, {"ada", {"ada", "appvirt-admins"}}};
    App a;
    a.id = "xterm";
    a.name = "XTerm";
    a.command = {"/usr/bin/xterm"};
    a.groups = {"staff"};
    apps.push_back(a);
    a.id = "calc";
    a.users = {"*"};
    apps.push_back(a);
  }
  ~World() { std::filesystem::remove_all(dir); }

  std::string dir;
  BrokerConfig config;
  testing::FakeAuthenticator auth;
  testing::FakeUserDirectory users;
  std::vector<App> apps;
};

World& world() {
  // Never destroyed (libFuzzer exits without unwinding); its scratch directory goes at exit.
  static World* w = [] {
    auto* made = new World();
    std::atexit([] { std::filesystem::remove_all(world().dir); });
    return made;
  }();
  return *w;
}

std::optional<http::Request> parse_request(const uint8_t* data, size_t size) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::system::error_code ec;
  size_t used = 0;
  while (used < size && !parser.is_done()) {
    size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == bhttp::error::need_more) break;
    if (ec || n == 0) return std::nullopt;
    used += n;
  }
  if (!parser.is_done()) {
    if (!parser.got_some()) return std::nullopt;  // put_eof requires some input
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return std::nullopt;
  }
  return parser.release();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  auto req = parse_request(data, size);
  if (!req) return 0;

  std::string db = w.dir + "/broker.db";
  std::filesystem::remove(db);
  std::filesystem::remove(db + "-wal");
  std::filesystem::remove(db + "-shm");
  auto store = SqliteStore::open(db);
  if (!store) __builtin_trap();
  boost::asio::io_context io;
  boost::asio::thread_pool pool(1);
  testing::FakeHostClient host;
  int64_t now = 1'700'000'000'000;
  BrokerDeps deps{**store, w.auth, w.users, host, pool, [&now] { return now; }};
  BrokerService svc(io.get_executor(), w.config, Catalog(w.apps), deps);
  WebSessionTable web(std::chrono::hours(1), std::chrono::hours(1), 100);
  BrokerApi api(svc, web, ApiSecrets{std::string(40, 'g'), std::string(40, 'h')});
  http::Router router = api.router_for("192.0.2.1");
  auto poll = [&svc]() -> boost::asio::awaitable<bool> {
    co_await svc.poll_once();
    co_return true;
  };
  testing::run_coro(io, poll());

  // A signed-in admin for requests that bring no credentials of their own.
  WebSession s;
  s.user = "ada";
  s.groups = {"ada", "appvirt-admins", "staff"};
  s.admin = true;
  auto created = web.create(s, std::chrono::steady_clock::now());
  if (!created) __builtin_trap();
  if (req->find(bhttp::field::cookie) == req->end()) {
    req->set(bhttp::field::cookie, std::string(kSessionCookie) + "=" + created->cookie);
    req->set("X-CSRF-Token", created->session->csrf_token);
  }
  if (req->find(bhttp::field::authorization) == req->end() && req->target().starts_with("/internal/v1/t")) {
    req->set(bhttp::field::authorization, "Bearer " + std::string(40, 'g'));
  }
  auto dispatch = [&router](http::Request r) -> boost::asio::awaitable<http::Response> {
    co_return co_await http::detail::dispatch(router, r);
  };
  http::Response res = testing::run_coro(io, dispatch(std::move(*req)));
  // Every answer is a well-formed status; 5xx only for the paths that may fail internally.
  if (res.result_int() < 200 || res.result_int() > 599) __builtin_trap();
  pool.join();
  return 0;
}
