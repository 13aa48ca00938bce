// VM sessions through the whole stack (label e2e, needs root and the vm_minimal_image fixture):
// a user whose policy says isolation = "vm" launches through the broker's portal API, the broker
// places the session on the host that offers VMs (learnt from hostd's /v1/health), hostd boots
// the golden image under QEMU (TCG unless the probe finds a KVM that runs guests), and rdp-probe
// connects through the gateway with the launch token and sees appvirt-testpattern's exact pixels
// from inside the guest. Logoff through the broker leaves no QEMU process, overlay or session dir.
// A second test ends a VM session by its disconnect timeout (the guest agent relays the
// endpoint's activity report to hostd), again leaving nothing behind. Two more launch on hostd
// directly: one restarts hostd under the running VM (re-adoption: same QEMU, same endpoint and
// pixels, the activity relay reconnected), one kills QEMU (end_reason vm-exited, nothing left).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/http_client.h"
#include "tests/e2e/stack.h"

namespace appvirt::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kVariant = 3;
constexpr const char* kVmApp = "vmpattern";

Binaries binaries() {
  return Binaries{APPVIRT_HOSTD, APPVIRT_BROKER,      APPVIRT_GATEWAY, APPVIRT_SANDBOX,
                  APPVIRT_RDP,   APPVIRT_TESTPATTERN, RDP_PROBE,       APPVIRT_PAM_FILE};
}

std::string image_dir() {
  const char* env = std::getenv("APPVIRT_VM_IMAGE");
  return env ? env : APPVIRT_VM_IMAGE;
}

// Pids whose command line names this session's QEMU (-name appvirt-<sid>).
std::vector<pid_t> qemu_pids_of(const std::string& session_id) {
  std::vector<pid_t> out;
  const std::string needle = std::string("appvirt-") + session_id + '\0';
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find("qemu-system") != std::string::npos && cmd.find(needle) != std::string::npos) {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

// The argument after `flag` on a process's command line ("" if none).
std::string cmdline_value(pid_t pid, const std::string& flag) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string arg, prev;
  while (std::getline(in, arg, '\0')) {
    if (prev == flag) return arg;
    prev = arg;
  }
  return "";
}

// QEMU's cgroup as hostd names it, under every mounted hierarchy that has it (v1: one per
// controller; v2: the unified one).
std::vector<fs::path> vm_cgroup_dirs(const std::string& session_id) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    fs::path d = e.path() / "appvirt/vm" / ("s-" + session_id);
    if (fs::is_directory(d, ec)) out.push_back(d);
  }
  return out;
}

// A field of a JSON object; null when the value is no object or lacks the key. Replies of an
// unexpected shape then fail the checks with their text instead of throwing out of the test.
nlohmann::json field(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) ? j[key] : nlohmann::json();
}

// The session with this id in hostd's list (null if absent or the list is unreadable).
nlohmann::json session_in(const Result<nlohmann::json>& list, const std::string& id) {
  if (!list || !list->is_array()) return nullptr;
  for (const auto& s : *list) {
    if (field(s, "session_id") == id) return s;
  }
  return nullptr;
}

template <class F>
bool eventually(F f, std::chrono::milliseconds timeout) {
  auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return f();
}

class VmSessionE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "needs root (users, PAM, hostd, QEMU)";
    ASSERT_TRUE(fs::exists(image_dir() + "/manifest.json"))
        << image_dir() << ": no golden image (the vm_minimal_image test builds it)";
    stack_ = std::make_unique<FullStack>(binaries());
    StackOptions o;
    o.hostd_extra = "[vm]\nimage_dir = \"" + image_dir() +
                    "\"\ncapacity = 1\naccelerator = \"auto\"\nmemory_mib = 512\nvcpus = 2\n"
                    "ready_timeout_ms = 240000\npower_off_grace_ms = 15000\n";
    o.broker_apps = std::string("[[apps]]\nid = \"") + kVmApp +
                    "\"\nname = \"Test pattern (VM)\"\n"
                    "command = [\"/usr/local/bin/appvirt-testpattern\", \"--variant\", \"" +
                    std::to_string(kVariant) + "\"]\nusers = [\"*\"]\n";
    o.policies = "[defaults]\nisolation = \"vm\"\n";
    o.launch_timeout = 270s;
    o.terminate_sessions_on_exit = terminate_sessions_on_exit_;
    stack_->set_options(o);
    auto started = stack_->start();
    ASSERT_TRUE(started) << started.error().str() << "\n" << stack_->logs();
  }

  void TearDown() override {
    if (HasFailure() && stack_) {
      std::cerr << stack_->logs();
      if (!session_id_.empty()) {
        std::cerr << "--- guest console ---\n"
                  << read_file(stack_->dir() + "/hostd/vm/" + session_id_ + "/console.log");
      }
    }
    stack_.reset();  // hostd --terminate-sessions-on-exit powers its VMs off
    // Whatever a failure left: no QEMU of this test may survive it.
    if (!session_id_.empty()) {
      for (pid_t p : qemu_pids_of(session_id_)) ::kill(p, SIGKILL);
    }
  }

  static std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // A VM session launched on hostd directly (no broker); `extra` adds fields to the request.
  // Fills session_id_; returns hostd's reply (session_id, secret, endpoint.tcp checked).
  nlohmann::json launch_on_hostd(const nlohmann::json& extra = nlohmann::json::object()) {
    nlohmann::json body = {
        {"user", stack_->user().name()},
        {"app_id", kVmApp},
        {"command", {"/usr/local/bin/appvirt-testpattern", "--variant", std::to_string(kVariant)}},
        {"isolation", "vm"}};
    body.update(extra);
    auto r = http::unix_request(stack_->dir() + "/run/hostd.sock", http::bhttp::verb::post,
                                "/v1/sessions", body.dump(), 280s);
    EXPECT_TRUE(r) << r.error().str();
    if (!r) return nullptr;
    EXPECT_EQ(r->status, 201u) << r->body;
    auto reply = nlohmann::json::parse(r->body, nullptr, false);
    bool ok = field(reply, "session_id").is_string() && field(reply, "secret").is_string() &&
              field(field(reply, "endpoint"), "tcp").is_string();
    EXPECT_TRUE(ok) << r->body;
    if (!ok) return nullptr;
    session_id_ = reply["session_id"].get<std::string>();
    return reply;
  }

  // GET /v1/sessions/<id> on hostd (null if it does not answer 200 with JSON).
  nlohmann::json hostd_session(const std::string& id) {
    auto r = http::unix_request(stack_->dir() + "/run/hostd.sock", http::bhttp::verb::get,
                                "/v1/sessions/" + id, "", 5s);
    if (!r || r->status != 200) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  }

  // rdp-probe on the VM's forwarded port with the session secret, exact pixels, held `hold_ms`
  // after the match. Report in <dir>/<tag>.json, log in <dir>/<tag>.log.
  Result<testing::Child> spawn_direct_probe(const nlohmann::json& reply, int hold_ms,
                                            const std::string& tag) {
    testing::SpawnOptions o;
    o.stdout_file = stack_->dir() + "/" + tag + ".json";
    o.stderr_file = stack_->dir() + "/" + tag + ".log";
    return testing::Child::spawn(
        {RDP_PROBE, reply["endpoint"]["tcp"].get<std::string>(), "--cookie",
         "Cookie: msts=" + reply["secret"].get<std::string>(), "--lossless", "--expect-pattern",
         std::to_string(kVariant), "--wait-match", "--hold-ms", std::to_string(hold_ms),
         "--timeout-ms", "90000"},
        o);
  }

  std::string probe_output(const std::string& tag) {
    return testing::read_text_file(stack_->dir() + "/" + tag + ".json") +
           testing::read_text_file(stack_->dir() + "/" + tag + ".log");
  }

  // Its QEMU as the session record in hostd's state dir has it.
  pid_t recorded_qemu_pid(const std::string& id) {
    auto j = nlohmann::json::parse(read_file(stack_->dir() + "/hostd/sessions/" + id + ".json"),
                                   nullptr, false);
    auto pid = field(field(j, "vm"), "pid");
    return pid.is_number_integer() ? pid.get<pid_t>() : -1;
  }

  bool terminate_sessions_on_exit_ = true;  // the first hostd's flag (see StackOptions)
  std::unique_ptr<FullStack> stack_;
  std::string session_id_;
};

// The restart path: the first hostd runs without --terminate-sessions-on-exit, so SIGTERM leaves
// its sessions running.
class VmSessionRestartE2e : public VmSessionE2e {
 protected:
  VmSessionRestartE2e() { terminate_sessions_on_exit_ = false; }
};

TEST_F(VmSessionE2e, PolicyVmLaunchThroughBrokerAndGatewayShowsThePatternAndLogoffLeavesNothing) {
  auto web = stack_->login(stack_->user().name(), stack_->user().password());
  ASSERT_TRUE(web) << web.error().str();

  // The broker learns from hostd's health that this host offers VMs (probe every second).
  auto t0 = Clock::now();
  auto launch = stack_->launch(*web, kVmApp);
  double launch_s = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_TRUE(launch) << launch.error().str();
  ASSERT_EQ(launch->status, 200u) << launch->error_body;
  session_id_ = launch->session_id;
  ASSERT_FALSE(launch->token.empty());

  auto listed = stack_->hostd_sessions();
  ASSERT_TRUE(listed) << listed.error().str();
  nlohmann::json mine = session_in(listed, session_id_);
  ASSERT_TRUE(mine.is_object()) << listed->dump();
  EXPECT_EQ(field(mine, "isolation"), "vm");
  EXPECT_EQ(field(mine, "state"), "running");
  EXPECT_TRUE(field(field(mine, "endpoint"), "unix").is_null()) << mine.dump();
  ASSERT_TRUE(field(field(mine, "endpoint"), "tcp").is_string()) << mine.dump();
  const std::string vm_dir = stack_->dir() + "/hostd/vm/" + session_id_;
  EXPECT_TRUE(fs::exists(vm_dir + "/overlay.qcow2"));
  EXPECT_EQ(qemu_pids_of(session_id_).size(), 1u);

  // Through the gateway with the token: the gateway rewrites it to the session secret, the
  // guest's appvirt-rdp checks it. Lossless: the guest's test pattern must match exactly.
  auto t1 = Clock::now();
  ProbeRun run = stack_->probe({"--cookie", "Cookie: msts=" + launch->token, "--lossless",
                                "--expect-pattern", std::to_string(kVariant), "--wait-match",
                                "--timeout-ms", "90000"},
                               120s, "vmprobe");
  double frame_s = std::chrono::duration<double>(Clock::now() - t1).count();
  EXPECT_EQ(run.exit_code, 0) << run.str();
  EXPECT_EQ(field(run.report, "match"), true) << run.str();
  // The figures bench/RESULTS.md quotes ("VM launch → first frame").
  auto health = http::unix_request(stack_->dir() + "/run/hostd.sock", http::bhttp::verb::get,
                                   "/v1/health", "", 5s);
  std::string accel = "?";
  if (health && health->status == 200) {
    auto j = nlohmann::json::parse(health->body, nullptr, false);
    accel = field(field(j, "vm"), "accelerator").dump();
  }
  std::cout << "vm-e2e: accel=" << accel << " launch_s=" << launch_s
            << " probe_s=" << frame_s << " connected_ms=" << field(run.report, "connected_ms").dump()
            << " first_frame_ms=" << field(run.report, "first_frame_ms").dump()
            << " match_ms=" << field(run.report, "match_ms").dump()
            << " launch_to_first_frame_s="
            << launch_s + (field(run.report, "first_frame_ms").is_number()
                               ? field(run.report, "first_frame_ms").get<double>() / 1000
                               : frame_s)
            << "\n";

  // Logoff through the broker (the user's own session): the VM powers off, nothing is left.
  broker::e2e::Options as_user;
  as_user.headers["Cookie"] = "__Host-appvirt_session=" + web->cookie;
  as_user.headers["X-CSRF-Token"] = web->csrf;
  auto off = broker::e2e::https(stack_->broker_port(), "DELETE",
                                "/api/v1/sessions/" + session_id_, "", as_user);
  ASSERT_TRUE(off) << off.error().str();
  EXPECT_EQ(off->status, 200u) << off->body;
  EXPECT_TRUE(eventually([&] { return qemu_pids_of(session_id_).empty(); }, 40s))
      << "QEMU of the session still runs after logoff";
  EXPECT_TRUE(eventually([&] { return !fs::exists(vm_dir); }, 10s))
      << vm_dir << " (overlay) left after logoff";
  EXPECT_TRUE(eventually([&] { return vm_cgroup_dirs(session_id_).empty(); }, 10s))
      << "the VM's cgroup was left after logoff";
  auto after = stack_->hostd_sessions();
  ASSERT_TRUE(after) << after.error().str();
  nlohmann::json ended = session_in(after, session_id_);
  if (ended.is_object()) {  // or already expired from hostd's list
    EXPECT_EQ(field(ended, "state"), "ended") << ended.dump();
    EXPECT_EQ(field(ended, "end_reason"), "logoff") << ended.dump();
  }
}

// Idle and disconnect timeouts bind VM sessions too: the guest agent relays the endpoint's
// activity report over its channel, hostd stamps it and decides as for a container. Launched on
// hostd directly (the broker's policies allow no timeout under a minute), connected to the
// forwarded port with the session secret.
TEST_F(VmSessionE2e, DisconnectTimeoutPowersTheVmOffAndLeavesNothing) {
  constexpr int kDisconnectS = 15;
  nlohmann::json body = {
      {"user", stack_->user().name()},
      {"app_id", kVmApp},
      {"command", {"/usr/local/bin/appvirt-testpattern", "--variant", std::to_string(kVariant)}},
      {"isolation", "vm"},
      {"disconnect_timeout_s", kDisconnectS}};
  auto r = http::unix_request(stack_->dir() + "/run/hostd.sock", http::bhttp::verb::post,
                              "/v1/sessions", body.dump(), 280s);
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->status, 201u) << r->body;
  auto reply = nlohmann::json::parse(r->body, nullptr, false);
  ASSERT_TRUE(field(reply, "session_id").is_string() && field(reply, "secret").is_string() &&
              field(field(reply, "endpoint"), "tcp").is_string())
      << r->body;
  session_id_ = reply["session_id"].get<std::string>();
  const std::string tcp = reply["endpoint"]["tcp"].get<std::string>();
  const std::string vm_dir = stack_->dir() + "/hostd/vm/" + session_id_;
  auto clients = [&] { return field(session_in(stack_->hostd_sessions(), session_id_), "clients"); };

  // No client yet: hostd knows it from the relay (what the broker shows as "disconnected").
  EXPECT_TRUE(eventually([&] { return clients() == 0; }, 20s)) << clients().dump();

  // A client connects, sees the pattern, stays 5 s, hangs up.
  testing::SpawnOptions o;
  o.stdout_file = stack_->dir() + "/timeout-probe.json";
  o.stderr_file = stack_->dir() + "/timeout-probe.log";
  auto probe = testing::Child::spawn(
      {RDP_PROBE, tcp, "--cookie", "Cookie: msts=" + reply["secret"].get<std::string>(),
       "--lossless", "--expect-pattern", std::to_string(kVariant), "--wait-match", "--hold-ms",
       "5000", "--timeout-ms", "90000"},
      o);
  ASSERT_TRUE(probe) << probe.error().str();
  EXPECT_TRUE(eventually([&] { return clients() == 1; }, 60s)) << clients().dump();
  auto code = probe->wait_exit(100s);
  auto disconnected_at = Clock::now();
  EXPECT_EQ(code.value_or(-1), 0) << testing::read_text_file(o.stdout_file)
                                  << testing::read_text_file(o.stderr_file);
  EXPECT_TRUE(eventually([&] { return clients() == 0; }, 10s)) << clients().dump();

  // kDisconnectS after the hang-up (not after the guest's start: the relay follows the
  // connect), the session ends and the VM is powered off.
  bool ended = eventually(
      [&] { return field(session_in(stack_->hostd_sessions(), session_id_), "state") == "ended"; },
      std::chrono::seconds(kDisconnectS + 30));
  double after_s = std::chrono::duration<double>(Clock::now() - disconnected_at).count();
  auto s = session_in(stack_->hostd_sessions(), session_id_);
  ASSERT_TRUE(ended) << s.dump();
  EXPECT_EQ(field(s, "end_reason"), "disconnect-timeout") << s.dump();
  EXPECT_GE(after_s, kDisconnectS - 2.0);
  std::cout << "vm-e2e: disconnect_timeout_s=" << kDisconnectS << " ended_after_s=" << after_s
            << "\n";
  EXPECT_TRUE(eventually([&] { return qemu_pids_of(session_id_).empty(); }, 40s))
      << "QEMU of the session still runs after the timeout";
  EXPECT_TRUE(eventually([&] { return !fs::exists(vm_dir); }, 10s)) << vm_dir << " left";
}

// hostd restarts (SIGTERM without --terminate-sessions-on-exit, a new hostd on the same state
// dir) under a running VM session: the new hostd re-adopts the same QEMU, the same endpoint still
// shows the exact pattern, the agent channel is reconnected (clients 1 while a probe is held),
// and logoff then powers the VM off and leaves nothing.
TEST_F(VmSessionRestartE2e, HostdRestartReadoptsTheRunningVm) {
  auto reply = launch_on_hostd();
  ASSERT_TRUE(reply.is_object());
  const std::string vm_dir = stack_->dir() + "/hostd/vm/" + session_id_;
  const std::string tcp = reply["endpoint"]["tcp"].get<std::string>();
  auto qemu = qemu_pids_of(session_id_);
  ASSERT_EQ(qemu.size(), 1u);
  ASSERT_EQ(recorded_qemu_pid(session_id_), qemu[0]);
  auto clients = [&] { return field(hostd_session(session_id_), "clients"); };

  auto before = spawn_direct_probe(reply, 0, "probe-before");
  ASSERT_TRUE(before) << before.error().str();
  EXPECT_EQ(before->wait_exit(100s).value_or(-1), 0) << probe_output("probe-before");
  // The relayed count is back to 0 before the restart, so a 1 afterwards is a new relay.
  EXPECT_TRUE(eventually([&] { return clients() == 0; }, 20s)) << clients().dump();

  auto restarted = stack_->restart_hostd();
  ASSERT_TRUE(restarted) << restarted.error().str();
  EXPECT_EQ(qemu_pids_of(session_id_), qemu) << "QEMU did not survive hostd's restart";
  const std::string log = stack_->hostd_log();
  auto adopted_at = log.find("adopt session_adopted session=" + session_id_);
  ASSERT_NE(adopted_at, std::string::npos) << log;
  std::string adopted_line = log.substr(adopted_at, log.find('\n', adopted_at) - adopted_at);
  EXPECT_NE(adopted_line.find("isolation=vm"), std::string::npos) << adopted_line;
  auto s = hostd_session(session_id_);
  EXPECT_EQ(field(s, "state"), "running") << s.dump();
  EXPECT_EQ(field(s, "isolation"), "vm") << s.dump();
  EXPECT_EQ(field(field(s, "endpoint"), "tcp"), tcp) << s.dump();

  // The same endpoint and secret, the exact pattern; held, so the relay reports the client.
  auto after = spawn_direct_probe(reply, 8000, "probe-after");
  ASSERT_TRUE(after) << after.error().str();
  EXPECT_TRUE(eventually([&] { return clients() == 1; }, 60s)) << clients().dump();
  EXPECT_EQ(after->wait_exit(100s).value_or(-1), 0) << probe_output("probe-after");
  auto report = nlohmann::json::parse(
      testing::read_text_file(stack_->dir() + "/probe-after.json"), nullptr, false);
  EXPECT_EQ(field(report, "match"), true) << probe_output("probe-after");
  EXPECT_TRUE(eventually([&] { return clients() == 0; }, 10s)) << clients().dump();

  // Logoff on the new hostd: the adopted QEMU is powered off, nothing is left.
  auto off = http::unix_request(stack_->dir() + "/run/hostd.sock", http::bhttp::verb::delete_,
                                "/v1/sessions/" + session_id_, "", 30s);
  ASSERT_TRUE(off) << off.error().str();
  EXPECT_EQ(off->status, 200u) << off->body;
  EXPECT_TRUE(eventually([&] { return qemu_pids_of(session_id_).empty(); }, 40s))
      << "QEMU of the session still runs after logoff";
  EXPECT_TRUE(eventually([&] { return !fs::exists(vm_dir); }, 10s)) << vm_dir << " left";
  EXPECT_TRUE(eventually([&] { return vm_cgroup_dirs(session_id_).empty(); }, 10s))
      << "the VM's cgroup was left after logoff (re-adopted session)";
  auto ended = hostd_session(session_id_);
  EXPECT_EQ(field(ended, "state"), "ended") << ended.dump();
  EXPECT_EQ(field(ended, "end_reason"), "logoff") << ended.dump();
}

// QEMU dying under a running session (killed here) ends it with vm-exited at once, and the
// session dir (overlay included) is removed.
TEST_F(VmSessionE2e, QemuKilledEndsTheSessionWithVmExitedAndLeavesNothing) {
  auto reply = launch_on_hostd();
  ASSERT_TRUE(reply.is_object());
  const std::string vm_dir = stack_->dir() + "/hostd/vm/" + session_id_;
  ASSERT_TRUE(fs::exists(vm_dir + "/overlay.qcow2"));
  auto qemu = qemu_pids_of(session_id_);
  ASSERT_EQ(qemu.size(), 1u);
  ASSERT_EQ(recorded_qemu_pid(session_id_), qemu[0]);
  EXPECT_EQ(field(hostd_session(session_id_), "state"), "running");
  // QEMU runs in its own cgroup, memory bounded by the guest's RAM (-m) + 384 MiB of overhead.
  auto cgroups = vm_cgroup_dirs(session_id_);
  ASSERT_FALSE(cgroups.empty()) << "no appvirt/vm/s-" << session_id_ << " cgroup";
  bool memory_checked = false;
  for (const auto& d : cgroups) {
    std::ifstream procs(d / "cgroup.procs");
    std::string line;
    bool has_qemu = false;
    while (std::getline(procs, line)) has_qemu = has_qemu || line == std::to_string(qemu[0]);
    EXPECT_TRUE(has_qemu) << d << " lacks QEMU " << qemu[0];
    for (const char* f : {"memory.limit_in_bytes", "memory.max"}) {
      std::ifstream in(d / f);
      uint64_t limit = 0;
      if (!(in >> limit)) continue;
      std::string m = cmdline_value(qemu[0], "-m");  // "<MiB>M"
      ASSERT_FALSE(m.empty());
      EXPECT_EQ(limit, (std::stoull(m) + 384) << 20) << d / f;
      memory_checked = true;
    }
  }
  EXPECT_TRUE(memory_checked) << "no memory limit file in the VM's cgroups";
  auto usage = field(hostd_session(session_id_), "usage");
  EXPECT_TRUE(field(usage, "memory_bytes").is_number()) << usage.dump();

  ASSERT_EQ(::kill(qemu[0], SIGKILL), 0);
  auto killed_at = Clock::now();
  bool ended = eventually([&] { return field(hostd_session(session_id_), "state") == "ended"; }, 10s);
  double after_s = std::chrono::duration<double>(Clock::now() - killed_at).count();
  auto s = hostd_session(session_id_);
  ASSERT_TRUE(ended) << s.dump();
  EXPECT_EQ(field(s, "end_reason"), "vm-exited") << s.dump();
  std::cout << "vm-e2e: qemu_killed_ended_after_s=" << after_s << "\n";
  EXPECT_TRUE(eventually([&] { return qemu_pids_of(session_id_).empty(); }, 10s));
  EXPECT_TRUE(eventually([&] { return !fs::exists(vm_dir); }, 10s)) << vm_dir << " left";
  EXPECT_TRUE(eventually([&] { return vm_cgroup_dirs(session_id_).empty(); }, 10s))
      << "the VM's cgroup was left behind";
}

}  // namespace
}  // namespace appvirt::e2e
