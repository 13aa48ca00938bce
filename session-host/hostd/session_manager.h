#pragma once
// The sessions of this host: launch (container, display, Xvfb, app, RDP endpoint), exit
// monitoring, logoff, per-user containers, persistence and re-adoption after a restart.
// Runs on one io_context thread; every external effect goes through a seam (UserDb,
// SandboxRunner, CgroupControl, RdpLauncher, Clock) so tests can drive it with fakes.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <atomic>
#include <boost/asio.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "session-host/hostd/cgroup_control.h"
#include "session-host/hostd/child_reaper.h"
#include "session-host/hostd/clock.h"
#include "session-host/hostd/display_alloc.h"
#include "session-host/hostd/endpoint_activity.h"
#include "session-host/hostd/hostd_config.h"
#include "session-host/hostd/pid_watch.h"
#include "session-host/hostd/rdp_launcher.h"
#include "session-host/hostd/sandbox_runner.h"
#include "session-host/hostd/session.h"
#include "session-host/hostd/session_store.h"
#include "session-host/hostd/user_db.h"
#include "session-host/vm/vm_session.h"

namespace appvirt::hostd {

// An error the control API maps to an HTTP status.
struct ApiError {
  int status = 500;
  std::string message;
};
template <class T>
using ApiResult = tl::expected<T, ApiError>;
inline tl::unexpected<ApiError> api_error(int status, std::string message) {
  return tl::unexpected<ApiError>(ApiError{status, std::move(message)});
}

struct LaunchRequest {
  std::string user;
  std::string app_id;
  std::vector<std::string> command;
  Limits limits;
  std::optional<int> width, height;
  int64_t idle_timeout_s = 0;        // 0 = none
  int64_t disconnect_timeout_s = 0;  // 0 = none
  std::string isolation = "container";  // or "vm" (vm_sessions.cc)
};

// VM sessions' worker threads post back to the io thread only while this is open (closed when
// the SessionManager goes); the accelerator is probed once, by the first launch's thread.
struct VmThreadGate {
  std::mutex mu;
  bool open = true;
};
struct VmAccelState {
  std::mutex mu;
  std::optional<vm::Accel> accel;
  std::string reason;
};

struct LaunchResult {
  Session session;
  std::string secret;
};

struct SessionManagerDeps {
  UserDb& users;
  SandboxRunner& sandbox;
  CgroupControl& cgroups;
  RdpLauncher& rdp;
  Clock& clock;
  SessionStore& store;
  DisplayAllocator& displays;
  ChildReaper* reaper = nullptr;  // for exit statuses of hostd's own children; may be null
};

class SessionManager {
 public:
  SessionManager(boost::asio::any_io_executor executor, HostdConfig config, SessionManagerDeps deps);
  ~SessionManager();

  boost::asio::awaitable<ApiResult<LaunchResult>> launch(LaunchRequest req);
  ApiResult<Session> get(const std::string& id) const;
  std::vector<Session> list() const;
  // session_to_api plus what only the live host knows: connected clients and cgroup usage.
  nlohmann::json describe(const Session& s) const;
  // Ends the session (reason "logoff"); an already ended session is returned as it is.
  ApiResult<Session> logoff(const std::string& id);
  // Live change of a user's container limits (unset fields fall back to the defaults).
  ApiResult<Limits> set_user_limits(const std::string& user, const Limits& limits);
  // Live change of the idle/disconnect timeouts of a user's starting and running sessions
  // (a policy change): stored with each session and enforced from the next check. Returns the
  // ids of the sessions changed; 404 when the user has none.
  ApiResult<std::vector<std::string>> set_user_timeouts(const std::string& user,
                                                        const SessionTimeouts& t);

  // Reads the state directory at start: re-adopts live sessions, ends and cleans up the rest.
  void adopt();
  // Ends every session and container (hostd --terminate-sessions-on-exit).
  void terminate_all(const std::string& reason);
  // Stops watching without touching anything: sessions keep running for the next hostd.
  void detach();

  std::size_t active_sessions() const;
  std::string cgroup_version() const { return deps_.cgroups.version(); }

  // VM sessions (vm_sessions.cc). init_vms loads the [vm] image; without it (or without [vm])
  // a launch with isolation "vm" is refused.
  Result<void> init_vms();
  std::vector<std::string> isolation_offered() const;  // ["container"] or ["container","vm"]
  nlohmann::json vm_health() const;                     // null when VMs are not configured
  std::size_t active_vm_sessions() const;

 private:
  struct Live {
    Session s;
    std::unique_ptr<PidWatch> app_watch, xvfb_watch, rdp_watch;
    std::string pending_end;     // a process exited while the launch was still running
    bool display_reserved = false;
    std::unique_ptr<boost::asio::steady_timer> expiry;
    std::unique_ptr<boost::asio::steady_timer> timeout_check;  // idle/disconnect timeouts
    bool activity_warned = false;  // the activity report was unreadable (logged once)
    std::shared_ptr<vm::VmSession> vm;     // VM sessions: QEMU, powered off at the end
    std::unique_ptr<PidWatch> vm_watch;    // QEMU's exit (the guest powered itself off)
    // VM sessions: the guest agent's last activity relay, stamped in host monotonic time (none
    // yet: no verdict), and the stop flag of the thread reading the agent channel.
    std::optional<EndpointActivity> vm_activity;
    std::shared_ptr<std::atomic<bool>> vm_reader_stop;
  };
  struct Container {
    ContainerRecord rec;
    std::unique_ptr<PidWatch> init_watch;
    std::set<std::string> sessions;  // starting or running sessions in it
  };
  class UserLock;

  // Launch steps (session_manager.cc).
  Session make_session(const LaunchRequest& req, const UserInfo& user, const std::string& id) const;
  boost::asio::awaitable<ApiResult<void>> build_session(std::shared_ptr<Live> live,
                                                        const UserInfo& user, std::string* secret);
  boost::asio::awaitable<ApiResult<Container*>> ensure_container(const UserInfo& user,
                                                                 const Limits& limits);
  boost::asio::awaitable<ApiResult<ProcRef>> start_in_container(std::shared_ptr<Live> live,
                                                                const UserInfo& user,
                                                                std::vector<std::string> argv,
                                                                std::vector<std::string> env,
                                                                const std::string& what);
  boost::asio::awaitable<ApiResult<void>> start_display(std::shared_ptr<Live> live,
                                                        const UserInfo& user);
  boost::asio::awaitable<ApiResult<void>> wait_for_x_socket(std::shared_ptr<Live> live);
  boost::asio::awaitable<ApiResult<void>> start_app(std::shared_ptr<Live> live,
                                                    const UserInfo& user);
  static std::vector<std::string> session_env(const UserInfo& user);
  static std::string xauthority_in_container(const Session& s);
  boost::asio::awaitable<ApiResult<void>> start_rdp(std::shared_ptr<Live> live);
  ApiResult<void> prepare_session_dirs(const Session& s, const UserInfo& user);
  ApiResult<void> prepare_user_dirs(const UserInfo& user);
  std::unique_ptr<PidWatch> watch(const std::string& id, const ProcRef& ref, const char* which);
  boost::asio::awaitable<void> lock_user(const std::string& user);
  void unlock_user(const std::string& user);

  // Ending and cleanup (session_teardown.cc).
  void on_process_exit(const std::string& id, const std::string& which);
  std::string end_reason_for(Live& live, const std::string& which);
  void end_session(Live& live, const std::string& reason);
  void teardown_resources(const Session& s);
  void release_container(const std::string& user, const std::string& id);
  void destroy_container(const std::string& user);
  void on_container_exit(const std::string& user);
  void schedule_expiry(Live& live);

  // Idle and disconnect timeouts (session_timeouts.cc).
  void watch_timeouts(Live& live);
  void stop_timeout_watch(Live& live);
  void arm_timeout_check(Live& live, std::chrono::milliseconds after);
  void check_timeouts(const std::string& id);
  std::string activity_file(const Session& s) const;  // <runtime>/s/<sid>/status.json
  // The report a verdict is made on: the endpoint's file, or a VM guest's relayed report.
  Result<EndpointActivity> current_activity(const Live& live) const;

  // VM sessions (vm_sessions.cc).
  boost::asio::awaitable<ApiResult<LaunchResult>> launch_vm(LaunchRequest req, UserInfo user);
  boost::asio::awaitable<ApiResult<void>> boot_vm(std::shared_ptr<Live> live, UserInfo user,
                                                  std::string secret);
  ApiResult<vm::VmSpec> vm_spec_for(const Session& s, const UserInfo& user,
                                    const std::string& secret);
  void end_vm(Live& live, bool wait);
  // QEMU's cgroup: created with vm_limits(), QEMU's pid moved in right after its start.
  Result<void> confine_vm(const Session& s, pid_t qemu_pid, uint64_t guest_memory_mib);
  bool adopt_vm(Live& live);
  std::string vm_session_dir(const std::string& id) const;  // <state_dir>/vm/<sid>
  // The guest agent's events after ready (vm_activity.cc): a reader thread per VM session.
  void start_vm_agent_reader(Live& live, std::optional<vm::AgentChannel> channel);
  void stop_vm_agent_reader(Live& live);
  void on_vm_activity(const std::string& id, const vm::AgentActivity& a);

  // Paths.
  std::string user_runtime(const std::string& user) const;
  std::string session_run_dir(const Session& s) const;  // host side of /run/appvirt/<sid>
  std::string endpoint_dir(const Session& s) const;     // <runtime>/s/<sid>
  std::string x_socket(const Session& s) const;

  boost::asio::any_io_executor executor_;
  HostdConfig config_;
  SessionManagerDeps deps_;
  std::map<std::string, std::shared_ptr<Live>> sessions_;
  std::map<std::string, Container> containers_;
  std::map<std::string, std::shared_ptr<boost::asio::steady_timer>> user_locks_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::optional<vm::VmImage> vm_image_;
  std::shared_ptr<VmThreadGate> vm_gate_ = std::make_shared<VmThreadGate>();
  std::shared_ptr<VmAccelState> vm_accel_ = std::make_shared<VmAccelState>();
  bool terminating_ = false;        // terminate_all: VMs are powered off before hostd exits
};

// Removes a directory tree that must not reach into anything mounted below it: mounts under
// it (from /proc/self/mountinfo) are detached first, and the tree is left alone if one stays.
Result<void> remove_tree_safely(const std::string& dir);

}  // namespace appvirt::hostd
