// broker_bench (issue 3, item 10): the real appvirt-broker binary over HTTPS on loopback.
//  * login: throughput and latency of POST /api/v1/login through real PAM (pam_unix, users made
//    by this program with useradd/chpasswd and removed afterwards);
//  * launch: POST /api/v1/apps/{id}/launch from N concurrent keep-alive HTTPS clients, each
//    signed in with its own browser session. hostd is FAKED: the broker talks to an in-process
//    HTTP server on a Unix socket that answers hostd's control API (docs/session-host.md) at once,
//    so "launch" measures the broker (TLS, routing, cookie + CSRF, entitlement, policy,
//    placement, token issue, SQLite writes, audit, .rdp rendering) plus one hostd round trip over
//    a Unix socket, not starting Xvfb and an app. PAM is not in the launch numbers (the clients
//    sign in before).
// Needs root (useradd, /etc/pam.d). Prints one JSON object; --json also writes it to a file.
// Every wait is bounded; users, the PAM service file and the temporary directory are removed
// on every exit path except SIGKILL (leftover "avbench*" users are removed at the next start).
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <pwd.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "common/http_server.h"
#include "common/json_body.h"
#include "tests/tools/test_support.h"

namespace appvirt::bench {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

constexpr const char* kUserPrefix = "avbench";

struct Options {
  std::string broker = APPVIRT_BROKER;
  std::string pam_file = APPVIRT_PAM_FILE;
  int clients = 200;
  int login_concurrency = 4;  // the broker runs at most 4 PAM conversations per address
  int reattach_seconds = 20;
  int new_rounds = 5;
  int time_limit_seconds = 600;
  std::string json_file;
};

int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::string random_hex(int bytes) {
  std::random_device rd;
  std::string out;
  const char* digits = "0123456789abcdef";
  for (int i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xff;
    out += digits[v >> 4];
    out += digits[v & 15];
  }
  return out;
}

// ---- users and PAM service -------------------------------------------------------------------

// useradd/userdel take the passwd lock; other tests on the machine may hold it for a moment.
bool sh_retry(const std::string& cmd) {
  for (int i = 0; i < 20; ++i) {
    if (sh(cmd) == 0) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// Real local users (no home, no login shell: pam_unix checks the password and the account only).
class BenchUsers {
 public:
  ~BenchUsers() { remove_all(); }

  static void remove_leftovers() {
    std::vector<std::string> stale;
    ::setpwent();
    while (passwd* pw = ::getpwent()) {
      if (std::string(pw->pw_name).rfind(kUserPrefix, 0) == 0) stale.push_back(pw->pw_name);
    }
    ::endpwent();
    for (const auto& n : stale) sh_retry("userdel " + n);
    if (!stale.empty()) std::cerr << "removed " << stale.size() << " leftover bench users\n";
  }

  bool create(int n) {
    std::string tag = std::to_string(::getpid());
    for (int i = 0; i < n; ++i) {
      std::string name = kUserPrefix + tag + "x" + std::to_string(i);
      if (!sh_retry("useradd -M -s /usr/sbin/nologin " + name)) return false;
      names_.push_back(name);
      passwords_.push_back("Pw-" + random_hex(12));
    }
    // One chpasswd for all: passwords go through stdin, never a command line.
    FILE* p = ::popen("chpasswd", "w");
    if (!p) return false;
    for (std::size_t i = 0; i < names_.size(); ++i) {
      std::fprintf(p, "%s:%s\n", names_[i].c_str(), passwords_[i].c_str());
    }
    return ::pclose(p) == 0;
  }

  void remove_all() {
    for (const auto& n : names_) sh_retry("userdel " + n);
    names_.clear();
  }

  const std::string& name(int i) const { return names_[i]; }
  const std::string& password(int i) const { return passwords_[i]; }

 private:
  std::vector<std::string> names_, passwords_;
};

class PamService {
 public:
  explicit PamService(const std::string& source)
      : name_("appvirt-bench-" + std::to_string(::getpid())) {
    std::error_code ec;
    ok_ = fs::copy_file(source, "/etc/pam.d/" + name_, fs::copy_options::overwrite_existing, ec);
  }
  ~PamService() {
    std::error_code ec;
    fs::remove("/etc/pam.d/" + name_, ec);
  }
  const std::string& name() const { return name_; }
  bool ok() const { return ok_; }

 private:
  std::string name_;
  bool ok_ = false;
};

// ---- fake hostd --------------------------------------------------------------------------------

// hostd's control API, answered from memory at once, on its own thread.
class FakeHostd {
 public:
  explicit FakeHostd(std::string socket) : socket_(std::move(socket)) {}
  ~FakeHostd() { stop(); }

  void start() {
    acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io_, asio::local::stream_protocol::endpoint(socket_));
    http::ServerLimits limits;
    limits.max_connections = 4096;
    server_ = std::make_unique<http::HttpServer>(routes(), limits);
    server_->start(*acceptor_);
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_->close(ec);
      io_.stop();
    });
    thread_.join();
  }
  nlohmann::json counters() const {
    return {{"launch", launches_}, {"get", gets_}, {"list", lists_}, {"logoff", logoffs_}, {"health", healths_}};
  }

 private:
  using Req = http::Request;
  using Res = http::Response;
  using P = http::PathParams;

  nlohmann::json session_json(const std::string& id) const {
    const auto& s = sessions_.at(id);
    return {{"session_id", id}, {"user", s.first}, {"app_id", s.second}, {"state", "running"},
            {"end_reason", nullptr}, {"display", ":300"},
            {"endpoint", {{"unix", "/run/appvirt/s/" + id + "/rdp.sock"}, {"tcp", nullptr}}}};
  }

  http::Router routes() {
    http::Router r;
    r.add(bhttp::verb::post, "/v1/sessions", [this](const Req& req, const P&) -> asio::awaitable<Res> {
      nlohmann::json b = nlohmann::json::parse(req.body(), nullptr, false);
      if (!b.is_object()) co_return http::error_response(bhttp::status::bad_request, "bad json");
      std::string id = "fk" + std::to_string(++launches_);
      sessions_[id] = {b.value("user", ""), b.value("app_id", "")};
      nlohmann::json out = session_json(id);
      out["secret"] = random_hex(16);
      co_return http::json_response(bhttp::status::created, out);
    });
    r.add(bhttp::verb::get, "/v1/sessions", [this](const Req&, const P&) -> asio::awaitable<Res> {
      ++lists_;
      nlohmann::json list = nlohmann::json::array();
      for (const auto& [id, s] : sessions_) list.push_back(session_json(id));
      co_return http::json_response(bhttp::status::ok, {{"sessions", list}});
    });
    r.add(bhttp::verb::get, "/v1/sessions/{id}", [this](const Req&, const P& p) -> asio::awaitable<Res> {
      ++gets_;
      if (!sessions_.count(p.at("id"))) co_return http::error_response(bhttp::status::not_found, "no such session");
      co_return http::json_response(bhttp::status::ok, session_json(p.at("id")));
    });
    r.add(bhttp::verb::delete_, "/v1/sessions/{id}", [this](const Req&, const P& p) -> asio::awaitable<Res> {
      ++logoffs_;
      if (!sessions_.erase(p.at("id"))) co_return http::error_response(bhttp::status::not_found, "no such session");
      co_return http::json_response(bhttp::status::ok,
                                    {{"session_id", p.at("id")}, {"state", "ended"}, {"end_reason", "logoff"}});
    });
    r.add(bhttp::verb::get, "/v1/health", [this](const Req&, const P&) -> asio::awaitable<Res> {
      ++healths_;
      co_return http::json_response(bhttp::status::ok,
                                    {{"ok", true}, {"sessions", sessions_.size()}, {"cgroup", "v2"}});
    });
    return r;
  }

  std::string socket_;
  asio::io_context io_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> acceptor_;
  std::unique_ptr<http::HttpServer> server_;
  std::thread thread_;
  std::map<std::string, std::pair<std::string, std::string>> sessions_;  // id → user, app
  int launches_ = 0, gets_ = 0, lists_ = 0, logoffs_ = 0, healths_ = 0;
};

// ---- HTTPS client ------------------------------------------------------------------------------

struct Reply {
  unsigned status = 0;
  bhttp::response<bhttp::string_body> msg;
};

// One keep-alive HTTPS connection with one browser session. Reconnects (once per request) when
// the broker has closed the connection.
class Client {
 public:
  Client(asio::io_context& io, ssl::context& tls, uint16_t port) : io_(io), tls_(tls), port_(port) {}

  asio::awaitable<bool> connect() {
    stream_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io_, tls_);
    beast::get_lowest_layer(*stream_).expires_after(30s);
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port_);
    co_await beast::get_lowest_layer(*stream_).async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_await stream_->async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  asio::awaitable<std::optional<Reply>> request(bhttp::verb verb, std::string target, std::string body) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!stream_ || attempt > 0) {
        ++reconnects;
        bool ok = co_await connect();
        if (!ok) co_return std::nullopt;
      }
      std::optional<Reply> r = co_await once(verb, target, body);
      if (r) co_return r;
    }
    co_return std::nullopt;
  }

  std::string cookie, csrf, session_id;
  int reconnects = 0;

 private:
  asio::awaitable<std::optional<Reply>> once(bhttp::verb verb, const std::string& target,
                                             const std::string& body) {
    bhttp::request<bhttp::string_body> req{verb, target, 11};
    req.set(bhttp::field::host, "localhost");
    if (!cookie.empty()) req.set(bhttp::field::cookie, "__Host-appvirt_session=" + cookie);
    if (!csrf.empty() && verb != bhttp::verb::get) req.set("X-CSRF-Token", csrf);
    if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    beast::get_lowest_layer(*stream_).expires_after(60s);
    boost::system::error_code ec;
    co_await bhttp::async_write(*stream_, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return std::nullopt;
    Reply r;
    co_await bhttp::async_read(*stream_, buf_, r.msg, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return std::nullopt;
    r.status = r.msg.result_int();
    if (!r.msg.keep_alive()) stream_.reset();
    co_return r;
  }

  asio::io_context& io_;
  ssl::context& tls_;
  uint16_t port_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buf_;
};

// ---- measurements ------------------------------------------------------------------------------

double broker_cpu_seconds(pid_t pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Phase {
  explicit Phase(std::string n) : name(std::move(n)) {}
  std::string name;
  std::vector<double> ms;
  std::map<std::string, int> failures;  // "status 503", "transport", "not reused", ...
  double seconds = 0;
  double broker_cpu = 0;

  void fail(const std::string& why) { ++failures[why]; }
  nlohmann::json json() const {
    std::vector<double> s = ms;
    std::sort(s.begin(), s.end());
    auto pct = [&](double p) {
      if (s.empty()) return 0.0;
      auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(s.size() - 1) + 0.5);
      return std::round(s[std::min(i, s.size() - 1)] * 100) / 100;
    };
    double ok = static_cast<double>(s.size());
    return {{"ok", s.size()}, {"failures", failures}, {"seconds", std::round(seconds * 100) / 100},
            {"per_second", seconds > 0 ? std::round(ok / seconds * 10) / 10 : 0.0},
            {"p50_ms", pct(50)}, {"p90_ms", pct(90)}, {"p99_ms", pct(99)},
            {"max_ms", s.empty() ? 0.0 : std::round(s.back() * 100) / 100},
            {"broker_cpu_seconds", std::round(broker_cpu * 100) / 100},
            {"broker_cpu_ms_per_request", ok > 0 ? std::round(broker_cpu * 1000 / ok * 100) / 100 : 0.0}};
  }
};

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Set when a phase overran its bound: its coroutines are still pending and refer to closures
// that are gone, so the run must end without touching the io_context again.
bool g_timed_out = false;

// Runs the coroutines made by make(i) for i in [0, n) concurrently on io; bounded by limit.
template <class Make>
double run_all(asio::io_context& io, int n, Make make, std::chrono::seconds limit) {
  auto start = Clock::now();
  int done = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(io, make(i), [&](std::exception_ptr e) {
      ++done;
      if (e) std::cerr << "client coroutine failed with an exception\n";
    });
  }
  io.restart();
  while (done < n && Clock::now() - start < limit) io.run_for(100ms);
  if (done < n) {
    std::cerr << "phase did not finish within " << limit.count() << " s\n";
    g_timed_out = true;
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// ---- the benchmark -----------------------------------------------------------------------------

class Bench {
 public:
  explicit Bench(Options o) : opts_(std::move(o)), tls_(ssl::context::tls_client), pam_(opts_.pam_file) {
    tls_.set_verify_mode(ssl::verify_none);  // the broker's self-signed certificate
  }

  int run() {
    BenchUsers::remove_leftovers();
    if (!pam_.ok()) return fail_setup("cannot install /etc/pam.d/" + pam_.name());
    auto t0 = Clock::now();
    if (!users_.create(opts_.clients)) return fail_setup("useradd/chpasswd failed");
    users_seconds_ = std::chrono::duration<double>(Clock::now() - t0).count();
    hostd_ = std::make_unique<FakeHostd>(dir_.path() + "/hostd.sock");
    hostd_->start();
    if (!start_broker()) return fail_setup("broker did not start: " + read_text(dir_.path() + "/broker.log"));
    for (int i = 0; i < opts_.clients; ++i) clients_.push_back(std::make_unique<Client>(io_, tls_, port_));
    for (auto step : {&Bench::connect_all, &Bench::phase_login, &Bench::phase_first_launch,
                      &Bench::phase_reattach, &Bench::phase_new_sessions}) {
      (this->*step)();
      if (g_timed_out) {
        finish();
        std::_Exit(1);
      }
    }
    hostd_->stop();
    nlohmann::json out = report();
    finish();
    std::string text = out.dump(2);
    std::cout << text << "\n";
    if (!opts_.json_file.empty()) std::ofstream(opts_.json_file) << text << "\n";
    return 0;
  }

 private:
  int fail_setup(const std::string& why) {
    std::cerr << "broker_bench: " << why << "\n";
    finish();
    return 1;
  }

  void write_config() {
    std::ofstream out(dir_.path() + "/broker.toml");
    out << "state_dir = \"" << dir_.path() << "/broker\"\n"
        << "gateway_address = \"127.0.0.1:3389\"\n"
        << "pam_service = \"" << pam_.name() << "\"\n"
        << "log_level = \"info\"\n"
        << "[listen]\naddress = \"127.0.0.1\"\nport = 0\nmax_connections = 4096\n"
        // Clients sit idle on their connection while the others sign in.
        << "header_timeout_ms = 300000\n"
        << "[launch]\nhostd_timeout_ms = 10000\n"
        << "[[hosts]]\nname = \"fake\"\nsocket = \"" << dir_.path() << "/hostd.sock\"\ncapacity = 100000\n"
        << "[[apps]]\nid = \"bench\"\nname = \"Bench\"\ncommand = [\"/usr/bin/true\"]\nusers = [\"*\"]\n";
  }

  bool start_broker() {
    write_config();
    testing::SpawnOptions o;
    o.stderr_file = dir_.path() + "/broker.log";
    std::string port_file = dir_.path() + "/broker.port";
    auto c = testing::Child::spawn({opts_.broker, "--config", dir_.path() + "/broker.toml",
                                    "--port-file", port_file}, o);
    if (!c) return false;
    broker_ = std::move(*c);
    if (!testing::wait_path_exists(port_file, 30s)) return false;
    port_ = static_cast<uint16_t>(std::stoi(read_text(port_file)));
    return wait_host_up();
  }

  // The broker probes the (fake) host right after start; launches need it up.
  bool wait_host_up() {
    Client c(io_, tls_, port_);
    bool up = false;
    run_all(io_, 1, [&](int) -> asio::awaitable<void> {
      std::string target = "/healthz", none;
      for (int i = 0; i < 100 && !up; ++i) {
        auto op = c.request(bhttp::verb::get, target, none);
        std::optional<Reply> r = co_await std::move(op);
        nlohmann::json j = r ? nlohmann::json::parse(r->msg.body(), nullptr, false) : nlohmann::json();
        up = r && r->status == 200 && j.is_object() && j.value("hosts_up", 0) == 1;
        if (!up) {
          asio::steady_timer t(io_, 200ms);
          co_await t.async_wait(asio::use_awaitable);
        }
      }
    }, 60s);
    return up && !g_timed_out;
  }

  void connect_all() {
    int failed = 0;
    run_all(io_, opts_.clients, [&](int i) -> asio::awaitable<void> {
      bool ok = co_await clients_[i]->connect();
      if (!ok) ++failed;
    }, 60s);
    if (failed) std::cerr << failed << " clients could not connect\n";
  }

  asio::awaitable<void> login_one(int i, Phase& ph) {
    nlohmann::json body = {{"username", users_.name(i)}, {"password", users_.password(i)}};
    auto t = Clock::now();
    std::string target = "/api/v1/login", text = body.dump();
    auto op = clients_[i]->request(bhttp::verb::post, target, text);
    std::optional<Reply> r = co_await std::move(op);
    if (!r) { ph.fail("transport"); co_return; }
    if (r->status != 200) { ph.fail("status " + std::to_string(r->status)); co_return; }
    ph.ms.push_back(ms_since(t));
    std::string set(r->msg[bhttp::field::set_cookie]);
    std::string prefix = "__Host-appvirt_session=";
    clients_[i]->cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
    clients_[i]->csrf = nlohmann::json::parse(r->msg.body()).value("csrf_token", "");
  }

  // login_concurrency workers sign the users in, one PAM conversation each at a time.
  void phase_login() {
    Phase& ph = phases_.emplace_back("login_pam");
    int next = 0;
    double cpu = broker_cpu_seconds(broker_.pid());
    ph.seconds = run_all(io_, opts_.login_concurrency, [&](int) -> asio::awaitable<void> {
      while (next < opts_.clients) {
        int i = next++;
        co_await login_one(i, ph);
      }
    }, std::chrono::seconds(opts_.time_limit_seconds / 4));
    ph.broker_cpu = broker_cpu_seconds(broker_.pid()) - cpu;
  }

  asio::awaitable<void> launch_one(int i, Phase& ph, bool expect_reused) {
    Client& c = *clients_[i];
    if (c.cookie.empty()) { ph.fail("not signed in"); co_return; }
    auto t = Clock::now();
    std::string target = "/api/v1/apps/bench/launch", none;
    auto op = c.request(bhttp::verb::post, target, none);
    std::optional<Reply> r = co_await std::move(op);
    if (!r) { ph.fail("transport"); co_return; }
    if (r->status != 200) { ph.fail("status " + std::to_string(r->status)); co_return; }
    double ms = ms_since(t);
    if (r->msg.body().find("loadbalanceinfo:s:Cookie: msts=") == std::string::npos) { ph.fail("no token"); co_return; }
    bool reused = r->msg["X-Appvirt-Reused"] == "true";
    if (reused != expect_reused) { ph.fail(expect_reused ? "not reused" : "reused"); co_return; }
    c.session_id = std::string(r->msg["X-Appvirt-Session-Id"]);
    ph.ms.push_back(ms);
  }

  template <class Body>
  void timed_phase(const std::string& name, Body body, std::chrono::seconds limit) {
    Phase& ph = phases_.emplace_back(name);
    double cpu = broker_cpu_seconds(broker_.pid());
    ph.seconds = run_all(io_, opts_.clients, [&](int i) { return body(i, ph); }, limit);
    ph.broker_cpu = broker_cpu_seconds(broker_.pid()) - cpu;
  }

  // All clients at once, each starting a new session (placement + hostd POST /v1/sessions).
  void phase_first_launch() {
    timed_phase("launch_new_burst", [&](int i, Phase& ph) { return launch_one(i, ph, false); }, 120s);
  }

  // Every client launches its app again and again: reattach (hostd GET /v1/sessions/{id}).
  void phase_reattach() {
    auto deadline = Clock::now() + std::chrono::seconds(opts_.reattach_seconds);
    timed_phase("launch_reattach", [this, deadline](int i, Phase& ph) -> asio::awaitable<void> {
      while (Clock::now() < deadline) co_await launch_one(i, ph, true);
    }, std::chrono::seconds(opts_.reattach_seconds + 60));
  }

  // Each client logs its session off and launches a new one, new_rounds times.
  void phase_new_sessions() {
    Phase& off = phases_.emplace_back("logoff");
    timed_phase("launch_new_cycle", [this, &off](int i, Phase& ph) -> asio::awaitable<void> {
      for (int round = 0; round < opts_.new_rounds; ++round) {
        co_await logoff_one(i, off);
        co_await launch_one(i, ph, false);
      }
    }, std::chrono::seconds(opts_.time_limit_seconds / 4));
  }

  asio::awaitable<void> logoff_one(int i, Phase& ph) {
    Client& c = *clients_[i];
    if (c.session_id.empty()) { ph.fail("no session"); co_return; }
    auto t = Clock::now();
    std::string target = "/api/v1/sessions/" + c.session_id, none;
    auto op = c.request(bhttp::verb::delete_, target, none);
    std::optional<Reply> r = co_await std::move(op);
    if (!r) { ph.fail("transport"); co_return; }
    if (r->status != 200) { ph.fail("status " + std::to_string(r->status)); co_return; }
    ph.ms.push_back(ms_since(t));
    c.session_id.clear();
  }

  nlohmann::json metrics_lines() {
    nlohmann::json out = nlohmann::json::array();
    std::optional<Reply> r;
    Client c(io_, tls_, port_);
    run_all(io_, 1, [&](int) -> asio::awaitable<void> {
      std::string target = "/metrics", none;
      auto op = c.request(bhttp::verb::get, target, none);
      r = co_await std::move(op);
    }, 10s);
    if (!r) return out;
    std::istringstream in(r->msg.body());
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("appvirt_broker_logins_total", 0) == 0 || line.rfind("appvirt_broker_launches_total", 0) == 0 ||
          line.rfind("appvirt_broker_logoffs_total", 0) == 0) {
        out.push_back(line);
      }
    }
    return out;
  }

  nlohmann::json report() {
    utsname u{};
    ::uname(&u);
    int reconnects = 0;
    for (const auto& c : clients_) reconnects += c->reconnects;
    nlohmann::json j = {
        {"benchmark", "broker_bench"},
        {"date", utc_now()},
        {"machine", {{"kernel", std::string(u.release)}, {"cpus", std::thread::hardware_concurrency()}}},
        {"clients", opts_.clients}, {"login_concurrency", opts_.login_concurrency},
        {"hostd", "FAKE: in-process HTTP server on a Unix socket answering hostd's control API at once"},
        {"users_created_seconds", std::round(users_seconds_ * 100) / 100},
        {"client_reconnects", reconnects}, {"fake_hostd_calls", hostd_->counters()},
        {"broker_metrics", metrics_lines()}};
    for (const auto& p : phases_) j["phases"][p.name] = p.json();
    return j;
  }

  void finish() {
    clients_.clear();
    if (broker_.running()) {
      ::kill(broker_.pid(), SIGTERM);
      if (!broker_.wait_exit(15s)) broker_.terminate(1s);
    }
    if (hostd_) hostd_->stop();
    users_.remove_all();
  }

  Options opts_;
  testing::TempDir dir_;
  asio::io_context io_;
  ssl::context tls_;
  PamService pam_;
  BenchUsers users_;
  std::unique_ptr<FakeHostd> hostd_;
  testing::Child broker_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
  std::deque<Phase> phases_;  // deque: references to phases stay valid
  double users_seconds_ = 0;
};

}  // namespace
}  // namespace appvirt::bench

int main(int argc, char** argv) {
  appvirt::bench::Options o;
  CLI::App app{"appvirt-broker benchmark: PAM login and launch API (hostd faked), prints JSON"};
  app.add_option("--broker", o.broker, "appvirt-broker binary");
  app.add_option("--pam-file", o.pam_file, "PAM service file to install under a private name");
  app.add_option("--clients", o.clients, "concurrent HTTPS clients = users created")->check(CLI::Range(1, 1000));
  app.add_option("--login-concurrency", o.login_concurrency, "logins in flight")->check(CLI::Range(1, 64));
  app.add_option("--reattach-seconds", o.reattach_seconds, "length of the reattach phase")->check(CLI::Range(1, 300));
  app.add_option("--new-rounds", o.new_rounds, "logoff+launch rounds per client")->check(CLI::Range(0, 100));
  app.add_option("--json", o.json_file, "also write the JSON here");
  app.add_option("--time-limit", o.time_limit_seconds, "bound on the whole run (seconds)")->check(CLI::Range(60, 3600));
  CLI11_PARSE(app, argc, argv);
  if (::geteuid() != 0) {
    std::cerr << "broker_bench needs root (useradd, /etc/pam.d)\n";
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  // A hard bound on the whole run; SIGALRM's default action ends the process (users are then
  // removed at the next start).
  ::alarm(static_cast<unsigned>(o.time_limit_seconds));
  appvirt::bench::Bench bench(o);
  return bench.run();
}
