// VM sessions in hostd (docs/vm.md, docs/hostd.md): a launch with isolation "vm" boots the
// [vm] golden image through the appvirt_vm library instead of building a container. The VM
// has no display or container on this host; QEMU runs in a cgroup of its own (appvirt/vm/s-<id>)
// and its endpoint is the QEMU-forwarded port 127.0.0.1:<tcp_port>, guarded by the session
// secret like any other endpoint.
//
// VmSession's calls block (QEMU start up to 15 s, the guest's boot up to vm.ready_timeout,
// power-off up to the grace): they run on their own threads, never on the io thread, and
// report back through asio::post. A thread outliving the SessionManager (hostd exiting during
// a boot) finds the gate closed and drops its result; the next hostd ends that session as lost.
// Note for co_await: arguments are named locals, never temporaries (g++ 12, see session_manager.cc).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <thread>

#include "common/log.h"
#include "common/unique_fd.h"
#include "session-host/hostd/session_manager.h"
#include "session-host/hostd/xauth.h"
#include "session-host/vm/accel_probe.h"

namespace appvirt::hostd {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

constexpr uint64_t kMinVmMemoryMib = 256;  // kernel + Xvfb + appvirt-rdp in the guest

// Runs fn on a thread of its own and resumes the coroutine on `ex` with its result.
template <class T, class Fn>
asio::awaitable<std::optional<T>> run_blocking(asio::any_io_executor ex, std::shared_ptr<VmThreadGate> gate,
                                               Fn fn) {
  struct Slot {
    std::optional<T> value;
  };
  auto slot = std::make_shared<Slot>();
  auto timer = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
  std::thread([ex, gate, slot, timer, fn = std::move(fn)]() mutable {
    auto result = std::make_shared<T>(fn());
    std::lock_guard<std::mutex> lock(gate->mu);
    if (!gate->open) return;
    asio::post(ex, [slot, timer, result] {
      slot->value.emplace(std::move(*result));
      timer->cancel();
    });
  }).detach();
  while (!slot->value) {
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec && ec != asio::error::operation_aborted) break;
  }
  co_return std::move(slot->value);
}

// A loopback port nobody listens on now. QEMU binds it moments later; if another process
// takes it in between, VmSession::start fails with QEMU's message and the launch fails.
Result<int> free_loopback_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    return fail_errno("bind(127.0.0.1:0)");
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    return fail_errno("getsockname");
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

// Probed once, on the first VM launch's thread: /dev/kvm may exist where no guest runs
// (docs/vm.md). Blocking (up to 8 s): never on the io thread.
vm::Accel resolve_accel(VmAccelState& st, const std::string& qemu, const vm::VmImage& image,
                        const std::string& work_dir) {
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.accel) return *st.accel;
  auto probe = vm::probe_accelerator(qemu, image, work_dir, milliseconds(8000));
  st.accel = probe.accel;
  st.reason = probe.reason;
  spdlog::info("vm accelerator_probed accel={} reason={}", vm::accel_name(probe.accel),
               log_quote(probe.reason));
  return probe.accel;
}

// After power-off: kills what is left in QEMU's cgroup (power_off SIGKILLs a QEMU that did not
// stop) and removes it, and the appvirt/vm parent once no VM session has a cgroup.
void remove_vm_cgroup(CgroupControl& cgroups, const std::string& cg, const std::string& id) {
  if (auto r = cgroups.kill_all(cg); !r) {
    spdlog::warn("session cleanup_failed step=vm_cgroup_kill session={} error={}", id,
                 log_quote(r.error().str()));
  }
  if (auto r = cgroups.remove(cg); !r) {
    spdlog::warn("session cleanup_failed step=vm_cgroup session={} error={}", id,
                 log_quote(r.error().str()));
  }
  cgroups.remove_if_empty("appvirt/vm");
}

}  // namespace

std::string SessionManager::vm_session_dir(const std::string& id) const {
  return (config_.state_dir / "vm" / id).string();
}

Result<void> SessionManager::init_vms() {
  if (!config_.vm.enabled()) return {};
  auto image = vm::load_image(config_.vm.image_dir.string());
  if (!image) return tl::unexpected(wrap("vm.image_dir", image.error()));
  vm_image_ = *image;
  std::error_code ec;
  std::filesystem::create_directories(config_.state_dir / "vm", ec);
  if (ec) return fail("mkdir(" + (config_.state_dir / "vm").string() + ")", ec.value());
  ::chmod((config_.state_dir / "vm").c_str(), 0700);
  if (config_.vm.accelerator != "auto") {
    std::lock_guard<std::mutex> lock(vm_accel_->mu);
    vm_accel_->accel = config_.vm.accelerator == "kvm" ? vm::Accel::kKvm : vm::Accel::kTcg;
    vm_accel_->reason = "configured";
  }
  spdlog::info("vm configured image={} capacity={} accelerator={}", log_quote(image->disk),
               config_.vm.capacity, config_.vm.accelerator);
  return {};
}

std::vector<std::string> SessionManager::isolation_offered() const {
  if (vm_image_ && config_.vm.capacity > 0) return {"container", "vm"};
  return {"container"};
}

std::size_t SessionManager::active_vm_sessions() const {
  std::size_t n = 0;
  for (const auto& [id, live] : sessions_) {
    n += live->s.is_vm() && live->s.state != SessionState::ended;
  }
  return n;
}

nlohmann::json SessionManager::vm_health() const {
  if (!vm_image_) return nullptr;
  // try_lock: a probe in progress holds the lock for seconds; health must not wait for it.
  std::unique_lock<std::mutex> lock(vm_accel_->mu, std::try_to_lock);
  nlohmann::json accel = nullptr;  // not known yet (probe pending or running)
  std::string reason;
  if (lock.owns_lock() && vm_accel_->accel) {
    accel = vm::accel_name(*vm_accel_->accel);
    reason = vm_accel_->reason;
  }
  return {{"sessions", active_vm_sessions()},
          {"capacity", config_.vm.capacity},
          {"accelerator", accel},
          {"accelerator_reason", reason}};
}

ApiResult<vm::VmSpec> SessionManager::vm_spec_for(const Session& s, const UserInfo& user,
                                                  const std::string& secret) {
  vm::VmSpec spec;
  spec.session_id = s.id;
  spec.user = user.name;
  spec.uid = user.uid;
  spec.gid = user.gid;
  spec.argv = s.command;  // a path inside the image, not on this host
  spec.width = s.width;
  spec.height = s.height;
  spec.memory_mib = config_.vm.memory_mib;
  // The policy's memory_max caps the guest's RAM; cpu_max_percent gives whole vCPUs.
  if (s.limits.memory_max) spec.memory_mib = *s.limits.memory_max >> 20;
  if (spec.memory_mib < kMinVmMemoryMib) {
    return api_error(400, "limits.memory_max: a VM session needs at least " +
                              std::to_string(kMinVmMemoryMib) + " MiB");
  }
  spec.vcpus = config_.vm.vcpus;
  if (s.limits.cpu_max_percent) spec.vcpus = static_cast<int>(std::max<int64_t>(1, *s.limits.cpu_max_percent / 100));
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  spec.vcpus = std::min(spec.vcpus, cores);
  spec.image = *vm_image_;
  spec.session_dir = vm_session_dir(s.id);
  spec.host_port = s.tcp_port;
  spec.secret = secret;
  spec.qemu = config_.vm.qemu.string();
  spec.qemu_img = config_.vm.qemu_img.string();
  if (auto v = vm::validate_spec(spec); !v) return api_error(400, "vm: " + v.error().str());
  return spec;
}

asio::awaitable<ApiResult<LaunchResult>> SessionManager::launch_vm(LaunchRequest req,
                                                                   UserInfo user) {
  if (!vm_image_ || config_.vm.capacity <= 0) {
    co_return api_error(400, "isolation: this host runs no VM sessions ([vm] not configured)");
  }
  if (active_vm_sessions() >= static_cast<std::size_t>(config_.vm.capacity)) {
    co_return api_error(503, "no free VM capacity on this host (" +
                                 std::to_string(config_.vm.capacity) + " running)");
  }
  auto id = random_hex(8);
  auto secret = random_hex(32);
  auto port = free_loopback_port();
  if (!id || !secret || !port) {
    co_return api_error(500, "vm session setup: " +
                                 (!id ? id.error() : !secret ? secret.error() : port.error()).str());
  }
  auto live = std::make_shared<Live>();
  live->s = make_session(req, user, *id);
  Session& s = live->s;
  s.isolation = "vm";
  s.tcp_port = *port;
  sessions_[s.id] = live;  // counts against the capacity from now on
  std::string sec = *secret;
  auto booted = co_await boot_vm(live, user, sec);
  if (booted && !live->pending_end.empty()) {
    booted = api_error(500, "VM ended during launch: " + live->pending_end);
  }
  if (!booted) {
    spdlog::warn("session launch_failed session={} user={} isolation=vm error={}", s.id, s.user,
                 log_quote(booted.error().message));
    if (s.state != SessionState::ended) end_session(*live, "launch-failed");
    sessions_.erase(s.id);
    deps_.store.remove_session(s.id);
    co_return tl::unexpected(booted.error());
  }
  spdlog::info("session started session={} user={} app={} isolation=vm port={} qemu_pid={}", s.id,
               s.user, log_quote(s.app_id), s.tcp_port, live->vm->record().pid);
  watch_timeouts(*live);
  co_return LaunchResult{s, sec};
}

asio::awaitable<ApiResult<void>> SessionManager::boot_vm(std::shared_ptr<Live> live, UserInfo user,
                                                         std::string secret) {
  Session& s = live->s;
  if (auto r = deps_.store.save(s); !r) co_return api_error(500, "persist: " + r.error().str());
  if (auto r = deps_.store.write_secret(s.id, secret); !r) {
    co_return api_error(500, "secret: " + r.error().str());
  }
  auto spec = vm_spec_for(s, user, secret);
  if (!spec) co_return tl::unexpected(spec.error());
  vm::VmSpec start_spec = *spec;
  std::string work_dir = (config_.state_dir / "vm").string();
  // Named locals only in the co_await expressions below (g++ 12 coroutine temporaries bug).
  asio::any_io_executor ex = executor_;
  std::shared_ptr<VmThreadGate> gate = vm_gate_;
  auto start_fn = [accel = vm_accel_, start_spec, work_dir]() mutable {
    start_spec.accel = resolve_accel(*accel, start_spec.qemu, start_spec.image, work_dir);
    return vm::VmSession::start(start_spec);
  };
  auto started = co_await run_blocking<Result<vm::VmSession>>(ex, gate, std::move(start_fn));
  if (!started || !*started) {
    co_return api_error(500, "start VM: " + (started ? started->error().str() : "aborted"));
  }
  live->vm = std::make_shared<vm::VmSession>(std::move(**started));
  // Moments after the spawn: QEMU has not touched the guest's RAM yet, so (nearly) all of its
  // memory is charged to the new cgroup. A failure ends the launch (end_session powers it off).
  if (auto r = confine_vm(s, live->vm->record().pid, start_spec.memory_mib); !r) {
    co_return api_error(500, "VM cgroup: " + r.error().str());
  }
  if (s.state == SessionState::ended) {
    end_vm(*live, false);  // logged off while QEMU was starting: end_session found no VM yet
    co_return api_error(409, "session ended during launch");
  }
  // Persisted before the long wait: a hostd that dies now leaves a record the next one finds.
  s.vm = vm::record_to_json(live->vm->record());
  (void)deps_.store.save(s);
  std::shared_ptr<vm::VmSession> vm = live->vm;
  milliseconds timeout = config_.vm.ready_timeout;
  auto ready_fn = [vm, timeout] { return vm->wait_ready(timeout); };
  auto ready = co_await run_blocking<Result<nlohmann::json>>(ex, gate, std::move(ready_fn));
  if (s.state == SessionState::ended) co_return api_error(409, "session ended during launch");
  if (!ready || !*ready) {
    co_return api_error(500, "VM guest not ready: " + (ready ? ready->error().str() : "aborted"));
  }
  const vm::VmRecord& rec = live->vm->record();
  ProcRef qemu{rec.pid, rec.start_time};
  live->vm_watch = watch(s.id, qemu, "vm");
  start_vm_agent_reader(*live, live->vm->take_agent());
  s.state = SessionState::running;
  if (auto r = deps_.store.save(s); !r) co_return api_error(500, "persist: " + r.error().str());
  co_return ApiResult<void>{};
}

Result<void> SessionManager::confine_vm(const Session& s, pid_t qemu_pid,
                                        uint64_t guest_memory_mib) {
  const std::string cg = s.vm_cgroup();
  Limits limits = vm_qemu_limits(merge_limits(s.limits, config_.default_limits),
                                 guest_memory_mib + vm::kQemuOverheadMib);
  if (auto r = deps_.cgroups.create(cg); !r) return r;
  if (auto r = deps_.cgroups.set_limits(cg, limits); !r) return r;
  auto procs = deps_.cgroups.open_procs_files(cg);
  if (!procs) return tl::unexpected(procs.error());
  // cgroup.procs moves the whole thread group (QEMU's vCPU and I/O threads too).
  const std::string pid = std::to_string(qemu_pid);
  for (const auto& fd : *procs) {
    if (::write(fd.get(), pid.data(), pid.size()) != static_cast<ssize_t>(pid.size())) {
      return fail_errno("write " + pid + " to cgroup.procs of " + cg);
    }
  }
  spdlog::info("session vm_cgroup session={} cgroup={} limits={}", s.id, cg,
               limits_to_json(limits).dump());
  return {};
}

void SessionManager::end_vm(Live& live, bool wait) {
  live.vm_watch.reset();
  stop_vm_agent_reader(live);
  std::shared_ptr<vm::VmSession> vm = std::move(live.vm);
  const Session& s = live.s;
  if (!vm && !s.vm.is_null()) {
    // A record from before a restart (a lost session): power that QEMU off if it still runs.
    if (auto rec = vm::record_from_json(s.vm)) {
      if (auto adopted = vm::VmSession::adopt(*rec)) {
        vm = std::make_shared<vm::VmSession>(std::move(*adopted));
      }
    }
  }
  std::string dir = vm_session_dir(s.id);
  std::string cg = s.vm_cgroup();
  CgroupControl* cgroups = &deps_.cgroups;
  if (!vm) {
    // QEMU never ran (or is gone): only files and an empty cgroup are left, removed right away.
    if (auto r = remove_tree_safely(dir); !r) {
      spdlog::warn("session cleanup_failed step=vm_dir session={} error={}", s.id,
                   log_quote(r.error().str()));
    }
    remove_vm_cgroup(*cgroups, cg, s.id);
    return;
  }
  std::string id = s.id;
  milliseconds grace = config_.vm.power_off_grace;
  std::shared_ptr<VmThreadGate> gate = vm_gate_;
  auto off = [vm, dir, id, grace, cg, cgroups, gate, wait] {
    if (auto r = vm->power_off(grace); !r) {
      spdlog::warn("session cleanup_failed step=vm_power_off session={} error={}", id,
                   log_quote(r.error().str()));
    }
    (void)remove_tree_safely(dir);  // power_off removed it unless that failed
    {
      // On a detached thread the cgroup driver belongs to a SessionManager that may be gone:
      // the gate is closed (under this lock) before it is destroyed. The next hostd removes a
      // cgroup left behind then (lost sessions end through end_vm).
      std::unique_lock<std::mutex> lock(gate->mu, std::defer_lock);
      if (!wait) lock.lock();
      if (wait || gate->open) remove_vm_cgroup(*cgroups, cg, id);
    }
    spdlog::info("session vm_powered_off session={}", id);
  };
  // ACPI power-off takes seconds: off the io thread, except when hostd is about to exit.
  if (wait) {
    off();
  } else {
    std::thread(off).detach();
  }
}

bool SessionManager::adopt_vm(Live& live) {
  Session& s = live.s;
  if (s.state != SessionState::running || s.vm.is_null() || !vm_image_) return false;
  auto rec = vm::record_from_json(s.vm);
  if (!rec) return false;
  auto adopted = vm::VmSession::adopt(*rec);
  if (!adopted) {
    spdlog::warn("adopt vm_gone session={} error={}", s.id, log_quote(adopted.error().str()));
    return false;
  }
  live.vm = std::make_shared<vm::VmSession>(std::move(*adopted));
  live.vm_watch = watch(s.id, ProcRef{rec->pid, rec->start_time}, "vm");
  start_vm_agent_reader(live, std::nullopt);  // a new client of the agent socket
  watch_timeouts(live);
  spdlog::info("adopt session_adopted session={} user={} isolation=vm port={}", s.id, s.user,
               s.tcp_port);
  return true;
}

}  // namespace appvirt::hostd
