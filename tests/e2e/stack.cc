#include "tests/e2e/stack.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/http_client.h"

namespace appvirt::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using broker::e2e::as;
using broker::e2e::https;
using broker::e2e::Options;
using testing::Child;
using testing::read_text_file;
using testing::SpawnOptions;

namespace {

std::string random_secret() {
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 48; ++i) out += kChars[rd() % (sizeof kChars - 1)];
  return out;
}

}  // namespace

FullStack::FullStack(Binaries bin) : bin_(std::move(bin)) {}

FullStack::~FullStack() { stop_all(); }

Result<void> FullStack::start() {
  auto dir = testing::make_session_test_dir("fullstack-e2e");
  if (!dir) return tl::unexpected(dir.error());
  dir_ = *dir;
  pam_ = std::make_unique<broker::e2e::TempPamService>(bin_.pam_file);
  staff_ = std::make_unique<broker::e2e::TempGroup>("avfs");
  if (!pam_->ok() || !staff_->ok()) return fail("could not create the PAM service or group");
  user_ = std::make_unique<broker::e2e::TempUser>("avfu",
                                                  std::vector<std::string>{staff_->name()});
  if (!user_->ok()) return fail("could not create the test user");
  if (auto r = testing::install_testpattern(*user_, bin_.testpattern); !r) return r;
  auto port = testing::free_tcp_port();
  if (!port) return tl::unexpected(port.error());
  gateway_port_ = static_cast<uint16_t>(*port);
  if (auto r = write_configs(); !r) return r;
  std::vector<std::string> flags;
  if (opts_.terminate_sessions_on_exit) flags.push_back("--terminate-sessions-on-exit");
  auto hostd = testing::start_hostd(hostd_setup_, flags, dir_ + "/hostd.log");
  if (!hostd) return tl::unexpected(hostd.error());
  hostd_ = std::move(*hostd);
  if (auto r = start_broker(); !r) return r;
  return start_gateway();
}

Result<void> FullStack::write_configs() {
  sock_ = testing::hostd_socket(dir_);
  secret_file_ = dir_ + "/gateway.secret";
  std::ofstream(secret_file_) << random_secret() << "\n";
  hostd_setup_ = {.binary = bin_.hostd, .sandbox = bin_.sandbox, .rdp = bin_.rdp, .dir = dir_,
                  .extra = opts_.hostd_extra};
  if (auto r = testing::write_hostd_config(hostd_setup_); !r) return r;
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

Result<void> FullStack::start_broker() {
  auto b = broker::e2e::start_broker(bin_.broker, dir_ + "/broker.toml", dir_ + "/broker.port",
                                     dir_ + "/broker.log");
  if (!b) return tl::unexpected(b.error());
  broker_ = std::move(b->child);
  broker_port_ = b->port;
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

Result<void> FullStack::restart_hostd() {
  if (!hostd_.running()) return fail("restart_hostd: hostd is not running");
  if (::kill(hostd_.pid(), SIGTERM) < 0) return fail_errno("kill(hostd, SIGTERM)");
  auto code = hostd_.wait_exit(20s);
  if (!code) return fail("hostd did not exit within 20 s of SIGTERM");
  if (*code != 0) return fail("hostd exited with " + std::to_string(*code) + " on SIGTERM");
  auto hostd = testing::start_hostd(hostd_setup_, {"--terminate-sessions-on-exit"},
                                    dir_ + "/hostd.log");
  if (!hostd) return tl::unexpected(hostd.error());
  hostd_ = std::move(*hostd);
  return {};
}

void FullStack::stop_all() {
  gateway_.reset();
  if (broker_.running()) broker_.terminate(10s);
  testing::stop_hostd_and_clean_up(hostd_, dir_, {user_.get()});
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
  return broker::e2e::login(broker_port_, user, password);
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
