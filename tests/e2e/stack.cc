#include "tests/e2e/stack.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "common/http_client.h"

namespace appvirt::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using broker::e2e::https;
using broker::e2e::Options;
using broker::e2e::Reply;
using testing::Child;
using testing::read_text_file;
using testing::SpawnOptions;
using Clock = std::chrono::steady_clock;

namespace {

template <class Pred>
bool eventually(Pred pred, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

std::string random_secret() {
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 48; ++i) out += kChars[rd() % (sizeof kChars - 1)];
  return out;
}

Options as(const WebSession& web, bool csrf) {
  Options o;
  o.headers["Cookie"] = "__Host-appvirt_session=" + web.cookie;
  if (csrf) o.headers["X-CSRF-Token"] = web.csrf;
  return o;
}

}  // namespace

std::string token_of_rdp_file(const std::string& rdp) {
  const std::string key = "loadbalanceinfo:s:Cookie: msts=";
  auto pos = rdp.find(key);
  if (pos == std::string::npos) return {};
  auto end = rdp.find("\r\n", pos);
  return rdp.substr(pos + key.size(), end == std::string::npos ? end : end - pos - key.size());
}

FullStack::FullStack(Binaries bin) : bin_(std::move(bin)) {}

FullStack::~FullStack() { stop_all(); }

Result<void> FullStack::start() {
  if (::geteuid() != 0) return fail("the full-stack test needs root (users, PAM, hostd)");
  // hostd's sessions re-parent to us when hostd stops; we reap them.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return fail_errno("prctl(PR_SET_CHILD_SUBREAPER)");
  char tmpl[] = "/tmp/fullstack-e2e-XXXXXX";
  if (!::mkdtemp(tmpl)) return fail_errno("mkdtemp");
  dir_ = tmpl;
  ::chmod(dir_.c_str(), 0755);
  pam_ = std::make_unique<broker::e2e::TempPamService>(bin_.pam_file);
  staff_ = std::make_unique<broker::e2e::TempGroup>("avfs");
  if (!pam_->ok() || !staff_->ok()) return fail("could not create the PAM service or group");
  user_ = std::make_unique<broker::e2e::TempUser>("avfu",
                                                  std::vector<std::string>{staff_->name()});
  if (!user_->ok()) return fail("could not create the test user");
  // Only /usr, some of /etc and the home are visible in the container.
  std::string app = user_->home() + "/appvirt-testpattern";
  std::error_code ec;
  fs::copy_file(bin_.testpattern, app, fs::copy_options::overwrite_existing, ec);
  if (ec) return fail("copy appvirt-testpattern: " + ec.message());
  ::chown(app.c_str(), user_->uid(), static_cast<gid_t>(-1));
  ::chmod(app.c_str(), 0755);
  auto port = testing::free_tcp_port();
  if (!port) return tl::unexpected(port.error());
  gateway_port_ = static_cast<uint16_t>(*port);
  if (auto r = write_configs(); !r) return r;
  if (auto r = start_hostd(); !r) return r;
  if (auto r = start_broker(); !r) return r;
  return start_gateway();
}

Result<void> FullStack::write_configs() {
  sock_ = dir_ + "/run/hostd.sock";
  secret_file_ = dir_ + "/gateway.secret";
  std::ofstream(secret_file_) << random_secret() << "\n";
  std::ofstream(dir_ + "/hostd.toml") << "state_dir = \"" << dir_ << "/hostd\"\n"
                                      << "runtime_dir = \"" << dir_ << "/run\"\n"
                                      << "[paths]\nsandbox = \"" << bin_.sandbox << "\"\n"
                                      << "rdp = \"" << bin_.rdp << "\"\n"
                                      << opts_.hostd_extra;
  if (!opts_.policies.empty()) std::ofstream(dir_ + "/policies.toml") << opts_.policies;
  std::ofstream out(dir_ + "/broker.toml");
  if (!opts_.policies.empty()) out << "policy_file = \"" << dir_ << "/policies.toml\"\n";
  out << "state_dir = \"" << dir_ << "/broker\"\n"
      << "gateway_address = \"" << gateway_address() << "\"\n"
      << "pam_service = \"" << pam_->name() << "\"\n"
      << "log_level = \"debug\"\n"
      << "[listen]\naddress = \"127.0.0.1\"\nport = 0\n"
      << "[launch]\nwidth = " << kSessionWidth << "\nheight = " << kSessionHeight << "\n"
      << "hostd_timeout_ms = " << opts_.launch_timeout.count() << "\n"
      << "[internal]\ngateway_secret_file = \"" << secret_file_ << "\"\n"
      << "host_poll_interval_ms = 1000\n"
      << "[[hosts]]\nname = \"local\"\nsocket = \"" << sock_ << "\"\ncapacity = 8\n"
      << "[[apps]]\nid = \"" << kPatternApp << "\"\nname = \"Test pattern\"\n"
      << "command = [\"/bin/sh\", \"-c\", "
         "\"exec \\\"$HOME/appvirt-testpattern\\\" --variant 0 --keys-advance\"]\n"
      << "groups = [\"" << staff_->name() << "\"]\n"
      << "[[apps]]\nid = \"" << kXtermApp << "\"\nname = \"XTerm\"\n"
      << "command = [\"/usr/bin/xterm\"]\ngroups = [\"" << staff_->name() << "\"]\n"
      << opts_.broker_apps;
  if (!out) return fail("writing " + dir_ + "/broker.toml failed");
  return {};
}

Result<void> FullStack::start_hostd() {
  SpawnOptions o;
  o.stderr_file = dir_ + "/hostd.log";
  auto c = Child::spawn({bin_.hostd, "--config", dir_ + "/hostd.toml",
                         "--terminate-sessions-on-exit"}, o);
  if (!c) return tl::unexpected(c.error());
  hostd_ = std::move(*c);
  bool up = eventually([&] {
    auto r = http::unix_request(sock_, http::bhttp::verb::get, "/v1/health", "", 2s);
    return r && r->status == 200;
  }, 20s);
  if (!up) return fail("hostd did not answer /v1/health: " + hostd_log());
  return {};
}

Result<void> FullStack::start_broker() {
  SpawnOptions o;
  o.stderr_file = dir_ + "/broker.log";
  std::string port_file = dir_ + "/broker.port";
  auto c = Child::spawn({bin_.broker, "--config", dir_ + "/broker.toml", "--port-file", port_file}, o);
  if (!c) return tl::unexpected(c.error());
  broker_ = std::move(*c);
  if (!eventually([&] { return !read_text_file(port_file).empty(); }, 20s)) {
    return fail("broker did not write its port: " + broker_log());
  }
  broker_port_ = static_cast<uint16_t>(std::stoi(read_text_file(port_file)));
  // The broker probes its configured host right away; wait until it counts it as up.
  bool host_up = eventually([&] {
    auto r = https(broker_port_, "GET", "/healthz");
    if (!r || r->status != 200) return false;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() && j.value("hosts_up", 0) == 1;
  }, 20s);
  if (!host_up) return fail("broker never saw the host up: " + broker_log());
  return {};
}

Result<void> FullStack::start_gateway() {
  std::string gw_dir = dir_ + "/gateway";
  fs::create_directories(gw_dir);
  testing::BrokerLink link{broker_port_, dir_ + "/broker/tls/broker.crt", secret_file_};
  auto g = testing::GatewayProcess::start(bin_.gateway, gw_dir, link, "", gateway_port_);
  if (!g) return tl::unexpected(g.error());
  gateway_.emplace(std::move(*g));
  if (gateway_->port() != gateway_port_) return fail("the gateway did not take its port");
  return {};
}

void FullStack::stop_all() {
  gateway_.reset();
  if (broker_.running()) broker_.terminate(10s);
  std::set<std::string> ids;
  if (hostd_.running()) {
    auto list = hostd_sessions();
    if (list) {
      for (const auto& s : *list) ids.insert(s.value("session_id", ""));
    }
    hostd_.terminate(15s);  // --terminate-sessions-on-exit: ends every session
  }
  if (user_ && user_->ok()) {
    for (pid_t p : broker::e2e::pids_of_uid(user_->uid())) ::kill(p, SIGKILL);
    eventually([&] {
      broker::e2e::reap_orphans();
      return broker::e2e::pids_of_uid(user_->uid()).empty();
    }, 5s);
    broker::e2e::remove_cgroup("appvirt/u-" + user_->name());
  }
  broker::e2e::reap_orphans();
  for (const auto& id : ids) broker::e2e::remove_cgroup("appvirt/rdp/s-" + id);
  user_.reset();
  staff_.reset();
  pam_.reset();
  if (!dir_.empty() && !std::getenv("APPVIRT_KEEP_E2E_DIR")) fs::remove_all(dir_);
}

std::string FullStack::broker_log() const { return read_text_file(dir_ + "/broker.log"); }
std::string FullStack::hostd_log() const { return read_text_file(dir_ + "/hostd.log"); }

std::string FullStack::logs() const {
  return "--- gateway log ---\n" + (gateway_ ? gateway_->log() : std::string("(not started)")) +
         "\n--- broker log ---\n" + broker_log() + "\n--- hostd log ---\n" + hostd_log() + "\n";
}

Result<WebSession> FullStack::login(const std::string& user, const std::string& password) {
  auto r = https(broker_port_, "POST", "/api/v1/login",
                 nlohmann::json{{"username", user}, {"password", password}}.dump());
  if (!r) return tl::unexpected(r.error());
  if (r->status != 200) return fail("login: " + std::to_string(r->status) + " " + r->body);
  const std::string set = r->header("set-cookie");
  const std::string prefix = "__Host-appvirt_session=";
  if (set.rfind(prefix, 0) != 0) return fail("login: no session cookie");
  WebSession web;
  web.cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
  web.csrf = nlohmann::json::parse(r->body, nullptr, false).value("csrf_token", "");
  return web;
}

Result<Launch> FullStack::launch(const WebSession& web, const std::string& app) {
  Options o = as(web, true);
  o.timeout = opts_.launch_timeout + std::chrono::seconds(10);
  o.headers["Accept"] = "application/json";
  o.headers["Content-Type"] = "application/json";
  auto r = https(broker_port_, "POST", "/api/v1/apps/" + app + "/launch", "{}", o);
  if (!r) return tl::unexpected(r.error());
  Launch l;
  l.status = r->status;
  if (r->status != 200) {
    l.error_body = r->body;
    return l;
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object()) return fail("launch: not JSON: " + r->body);
  l.session_id = j.value("session_id", "");
  l.token = j.value("token", "");
  l.rdp_file = j.value("rdp_file", "");
  l.reused = j.value("reused", false);
  return l;
}

Result<nlohmann::json> FullStack::my_sessions(const WebSession& web) {
  auto r = https(broker_port_, "GET", "/api/v1/sessions?include_ended=true", "", as(web, false));
  if (!r) return tl::unexpected(r.error());
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object() || !j.contains("sessions")) {
    return fail("sessions: " + std::to_string(r->status) + " " + r->body);
  }
  return j["sessions"];
}

Result<nlohmann::json> FullStack::hostd_sessions() {
  auto r = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions", "", 10s);
  if (!r) return tl::unexpected(r.error());
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object() || !j.contains("sessions")) {
    return fail("hostd sessions: " + std::to_string(r->status) + " " + r->body);
  }
  return j["sessions"];
}

Result<Child> FullStack::spawn_probe(const std::vector<std::string>& args, const std::string& tag,
                                     int ready_fd) {
  std::vector<std::string> argv = {bin_.rdp_probe, gateway_address()};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.stdout_file = dir_ + "/" + tag + ".json";
  o.stderr_file = dir_ + "/" + tag + ".log";
  o.extra_fd = ready_fd;
  return Child::spawn(argv, o);
}

ProbeRun FullStack::collect_probe(Child& child, const std::string& tag, milliseconds timeout) {
  ProbeRun run;
  auto code = child.wait_exit(timeout);
  if (!code) child.terminate(1s);
  run.exit_code = code ? *code : -1;
  run.report = nlohmann::json::parse(read_text_file(dir_ + "/" + tag + ".json"), nullptr, false);
  // No report (crash, killed): an empty object, so the checks fail on their values, not throw.
  if (!run.report.is_object()) run.report = nlohmann::json::object();
  run.log = read_text_file(dir_ + "/" + tag + ".log");
  return run;
}

ProbeRun FullStack::probe(const std::vector<std::string>& args, milliseconds timeout,
                          const std::string& tag) {
  auto child = spawn_probe(args, tag);
  if (!child) {
    ProbeRun run;
    run.report = nlohmann::json::object();
    run.log = child.error().str();
    return run;
  }
  return collect_probe(*child, tag, timeout);
}

Result<Child> FullStack::xfreerdp(const testing::Xvfb& display,
                                  const std::vector<std::string>& args, const std::string& tag) {
  std::vector<std::string> argv = {"xfreerdp"};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.env = display.client_env();
  o.env["HOME"] = dir_;  // its certificate store and config stay in the test's directory
  o.stdout_file = dir_ + "/xfreerdp-" + tag + ".log";
  o.stderr_file = o.stdout_file;
  return Child::spawn(argv, o);
}

std::string FullStack::xfreerdp_log(const std::string& tag) const {
  return read_text_file(dir_ + "/xfreerdp-" + tag + ".log");
}

}  // namespace appvirt::e2e
