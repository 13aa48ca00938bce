#include "session-host/vm/vm_session.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/log.h"
#include "common/tls_cert.h"
#include "session-host/vm/qmp_client.h"
#include "session-host/vm/vm_process.h"

namespace appvirt::vm {

using std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string tail_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

namespace {

Result<void> write_private_file(const std::string& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return fail_errno("open(" + path + ")");
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    return fail_errno("write(" + path + ")");
  }
  return {};
}

// Session dir, fw_cfg files and the linked clone: everything QEMU needs before it starts.
Result<void> prepare_files(const VmSpec& spec, const VmPaths& p) {
  if (::mkdir(p.dir.c_str(), 0700) != 0) return fail_errno("mkdir(" + p.dir + ")");
  if (auto r = write_private_file(p.guest_config, guest_config_text(spec)); !r) return r;
  if (auto r = write_private_file(p.secret, spec.secret + "\n"); !r) return r;
  if (spec.tls_cert.empty()) {
    auto made = ensure_self_signed_cert(p.tls_cert, p.tls_key, "appvirt-" + spec.session_id, 825);
    if (!made) return tl::unexpected(wrap("session TLS certificate", made.error()));
  }
  auto rc = run_command(overlay_command(spec, p), p.qemu_log, milliseconds(30000));
  if (!rc) return tl::unexpected(wrap("qemu-img create", rc.error()));
  if (*rc == kExitUnknown && ::access(p.overlay.c_str(), R_OK) != 0)
    return fail("qemu-img create: no overlay made: " + tail_file(p.qemu_log, 500));
  if (*rc != 0 && *rc != kExitUnknown)
    return fail("qemu-img create exited " + std::to_string(*rc) + ": " +
                tail_file(p.qemu_log, 500));
  return {};
}

void remove_dir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace

VmSession::VmSession(VmRecord record, UniqueFd pidfd)
    : record_(std::move(record)), paths_(vm_paths(record_.session_dir)), pidfd_(std::move(pidfd)) {}

Result<VmSession> VmSession::start(const VmSpec& spec, milliseconds timeout) {
  if (auto ok = validate_spec(spec); !ok) return tl::unexpected(wrap("vm spec", ok.error()));
  const VmPaths p = vm_paths(spec.session_dir);
  if (auto r = prepare_files(spec, p); !r) {
    if (r.error().err != EEXIST) remove_dir(p.dir);
    return tl::unexpected(wrap("vm " + spec.session_id, r.error()));
  }
  auto pid = spawn_detached(qemu_command(spec, p), p.qemu_log);
  if (!pid) {
    remove_dir(p.dir);
    return tl::unexpected(pid.error());
  }
  auto pidfd = open_pidfd(*pid);
  if (!pidfd) {
    ::kill(*pid, SIGKILL);
    remove_dir(p.dir);
    return tl::unexpected(pidfd.error());
  }
  VmRecord rec{spec.session_id,  *pid,           proc_start_time(*pid).value_or(0),
               spec.session_dir, spec.host_port, spec.accel};
  VmSession vm(std::move(rec), std::move(*pidfd));
  // QEMU serves QMP only once its setup is done (port forwarded, disk open): an answer to
  // query-status means it started; an early exit shows QEMU's own message.
  auto deadline = steady_clock::now() + timeout;
  while (true) {
    auto qmp = QmpClient::connect(p.qmp_socket, milliseconds(250));
    if (qmp && qmp->execute("query-status", milliseconds(2000))) break;
    if (!vm.running() || steady_clock::now() >= deadline) {
      vm.kill_now();
      std::string log = tail_file(p.qemu_log, 800);
      remove_dir(p.dir);
      return fail("vm " + spec.session_id + ": QEMU did not start: " + log);
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return vm;
}

Result<VmSession> VmSession::adopt(const VmRecord& record) {
  auto now = proc_start_time(record.pid);
  if (!now || *now != record.start_time) {
    return fail("vm " + record.session_id + ": QEMU pid " + std::to_string(record.pid) +
                " is gone");
  }
  auto pidfd = open_pidfd(record.pid);
  if (!pidfd) return tl::unexpected(pidfd.error());
  // The pid could have been reused between the two checks; re-check with the pidfd held.
  if (proc_start_time(record.pid) != record.start_time) return fail("vm: pid reused");
  return VmSession(record, std::move(*pidfd));
}

bool VmSession::running() const {
  if (!pidfd_) return false;
  struct pollfd p {
    pidfd_.get(), POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 0;
}

bool VmSession::wait_exit(milliseconds timeout) {
  return !pidfd_ || wait_pidfd_exit(pidfd_.get(), record_.pid, timeout);
}

void VmSession::kill_now() {
  if (!pidfd_) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  wait_exit(milliseconds(5000));
}

Result<nlohmann::json> VmSession::wait_ready(milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  if (!agent_) {
    auto channel = AgentChannel::connect(paths_.agent_socket, timeout);
    if (!channel) return tl::unexpected(channel.error());
    agent_.emplace(std::move(*channel));
  }
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    auto msg = agent_->next(std::max(left, milliseconds(0)));
    if (!msg || !*msg) {
      return fail("guest agent: no ready report (" +
                  (msg ? std::string("timed out") : msg.error().str()) +
                  "); console: " + tail_file(paths_.console_log, 600));
    }
    auto event = agent_event(**msg);
    if (event == "ready") return **msg;
    if (event == "failed" || event == "exited") {
      return fail("guest agent reported " + (*msg)->dump());
    }
  }
}

std::optional<AgentChannel> VmSession::take_agent() {
  std::optional<AgentChannel> out = std::move(agent_);
  agent_.reset();
  return out;
}

Result<void> VmSession::power_off(milliseconds grace) {
  std::string problem;
  if (running()) {
    // A guest that ignores the power button (or is still booting) gets `quit`, then SIGKILL.
    auto qmp = QmpClient::connect(paths_.qmp_socket, milliseconds(3000));
    if (qmp && qmp->execute("system_powerdown", milliseconds(3000)) && wait_exit(grace)) {
      // powered off by the guest
    } else if (qmp && qmp->execute("quit", milliseconds(3000)) && wait_exit(milliseconds(5000))) {
      problem = "guest did not power off in time: quit";
    } else {
      kill_now();
      problem = "QEMU did not quit: killed";
    }
  }
  wait_exit(milliseconds(0));  // reap if it is our child
  agent_.reset();
  pidfd_.reset();
  std::error_code ec;
  fs::remove_all(paths_.dir, ec);
  if (ec) return fail("remove_all(" + paths_.dir + "): " + ec.message());
  if (!problem.empty())
    spdlog::warn("vm-power-off session={} note={}", record_.session_id, log_quote(problem));
  return {};
}

}  // namespace appvirt::vm
