// Launching sessions. Every step that creates something is undone by end_session() when a
// later step fails, so a failed launch leaves nothing behind and fails only that launch.
// Note for co_await: arguments are named locals, never temporaries (g++ 12 destroys
// temporaries of a co_await full-expression twice; see common/http_server.h).
#include "session-host/hostd/session_manager.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <filesystem>

#include "common/log.h"
#include "session-host/hostd/xauth.h"

namespace appvirt::hostd {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

ApiError internal(const std::string& what, const Error& e) { return {500, what + ": " + e.str()}; }

Result<void> make_dir(const std::string& dir, uid_t uid, gid_t gid, mode_t mode) {
  if (::mkdir(dir.c_str(), mode) < 0 && errno != EEXIST) return fail_errno("mkdir(" + dir + ")");
  struct stat st {};
  if (::lstat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) {
    return fail("mkdir(" + dir + "): exists and is not a directory");
  }
  if (::chown(dir.c_str(), uid, gid) < 0) return fail_errno("chown(" + dir + ")");
  if (::chmod(dir.c_str(), mode) < 0) return fail_errno("chmod(" + dir + ")");
  return {};
}

}  // namespace

SessionManager::SessionManager(asio::any_io_executor executor, HostdConfig config,
                               SessionManagerDeps deps)
    : executor_(std::move(executor)), config_(std::move(config)), deps_(deps) {}

SessionManager::~SessionManager() {
  *alive_ = false;
  {
    std::lock_guard<std::mutex> lock(vm_gate_->mu);
    vm_gate_->open = false;
  }
  detach();
}

std::string SessionManager::user_runtime(const std::string& user) const {
  return (config_.runtime_dir / "u" / user).string();
}
std::string SessionManager::session_run_dir(const Session& s) const {
  return user_runtime(s.user) + "/run/" + s.id;
}
std::string SessionManager::endpoint_dir(const Session& s) const {
  return (config_.runtime_dir / "s" / s.id).string();
}
std::string SessionManager::x_socket(const Session& s) const {
  return user_runtime(s.user) + "/x11/X" + std::to_string(s.display);
}

asio::awaitable<void> SessionManager::lock_user(const std::string& user) {
  // One launch per user at a time: the container is created once, displays and dirs of the
  // user's sessions never race. Waiters sleep on the holder's timer, cancelled at unlock.
  for (;;) {
    auto it = user_locks_.find(user);
    if (it == user_locks_.end()) break;
    auto timer = it->second;
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  user_locks_[user] =
      std::make_shared<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
}

void SessionManager::unlock_user(const std::string& user) {
  auto it = user_locks_.find(user);
  if (it == user_locks_.end()) return;
  auto timer = it->second;
  user_locks_.erase(it);
  timer->cancel();
}

Session SessionManager::make_session(const LaunchRequest& req, const UserInfo& user,
                                     const std::string& id) const {
  Session s;
  s.id = id;
  s.user = user.name;
  s.uid = user.uid;
  s.gid = user.gid;
  s.app_id = req.app_id;
  s.command = req.command;
  s.limits = merge_limits(req.limits, config_.default_limits);
  s.width = req.width.value_or(config_.default_width);
  s.height = req.height.value_or(config_.default_height);
  s.created_at = deps_.clock.now_unix();
  s.idle_timeout_s = req.idle_timeout_s;
  s.disconnect_timeout_s = req.disconnect_timeout_s;
  return s;
}

asio::awaitable<ApiResult<LaunchResult>> SessionManager::launch(LaunchRequest req) {
  if (!valid_user_name(req.user)) co_return api_error(400, "user: invalid name");
  auto user = deps_.users.lookup(req.user);
  if (!user) {
    int status = user.error().err == ENOENT ? 404 : 500;
    co_return api_error(status, "user " + req.user + ": " + user.error().str());
  }
  if (user->uid == 0 || user->uid < config_.min_uid) {
    co_return api_error(403, "user " + req.user + ": uid " + std::to_string(user->uid) +
                                 " may not run sessions (min_uid " +
                                 std::to_string(config_.min_uid) + ")");
  }
  if (req.isolation == "vm") {
    UserInfo vm_user = *user;
    auto vm_result = co_await launch_vm(std::move(req), vm_user);
    co_return vm_result;
  }
  auto id = random_hex(8);
  if (!id) co_return tl::unexpected(internal("session id", id.error()));
  std::string user_name = req.user;
  co_await lock_user(user_name);
  struct Unlock {
    SessionManager* m;
    std::string user;
    std::shared_ptr<bool> alive;
    ~Unlock() {
      if (*alive) m->unlock_user(user);
    }
  } unlock{this, user_name, alive_};

  auto live = std::make_shared<Live>();
  live->s = make_session(req, *user, *id);
  Session& s = live->s;
  auto display = deps_.displays.allocate();
  if (!display) co_return api_error(503, "no free display number on this host");
  s.display = *display;
  live->display_reserved = true;
  sessions_[s.id] = live;

  std::string secret;
  auto built = co_await build_session(live, *user, &secret);
  if (built && !live->pending_end.empty()) {
    built = api_error(500, "session process ended during launch: " + live->pending_end);
  }
  if (!built) {
    spdlog::warn("session launch_failed session={} user={} app={} error={}", s.id, s.user,
                 log_quote(s.app_id), log_quote(built.error().message));
    if (s.state != SessionState::ended) end_session(*live, "launch-failed");
    sessions_.erase(s.id);
    deps_.store.remove_session(s.id);
    co_return tl::unexpected(built.error());
  }
  spdlog::info("session started session={} user={} app={} display=:{} app_pid={} rdp_pid={}", s.id,
               s.user, log_quote(s.app_id), s.display, s.app.pid, s.rdp.pid);
  watch_timeouts(*live);
  co_return LaunchResult{s, secret};
}

asio::awaitable<ApiResult<void>> SessionManager::build_session(std::shared_ptr<Live> live,
                                                               const UserInfo& user,
                                                               std::string* secret) {
  Session& s = live->s;
  auto container = co_await ensure_container(user, s.limits);
  if (!container) co_return tl::unexpected(container.error());
  (*container)->sessions.insert(s.id);
  if (s.state == SessionState::ended) co_return api_error(409, "session ended during launch");
  if (auto r = deps_.store.save(s); !r) co_return tl::unexpected(internal("persist", r.error()));
  if (auto r = prepare_session_dirs(s, user); !r) co_return r;
  auto sec = random_hex(32);
  if (!sec) co_return tl::unexpected(internal("secret", sec.error()));
  *secret = *sec;
  if (auto r = deps_.store.write_secret(s.id, *secret); !r) {
    co_return tl::unexpected(internal("secret", r.error()));
  }
  auto display = co_await start_display(live, user);
  if (!display) co_return display;
  auto app = co_await start_app(live, user);
  if (!app) co_return app;
  auto rdp = co_await start_rdp(live);
  if (!rdp) co_return rdp;
  if (s.state == SessionState::ended) co_return api_error(409, "session ended during launch");
  // An app that is already gone fails the launch even if its exit event is still queued.
  if (!proc_alive(s.app)) {
    co_return api_error(500, "app exited during launch, see " + deps_.store.log_path(s.id, "app"));
  }
  s.state = SessionState::running;
  if (auto r = deps_.store.save(s); !r) co_return tl::unexpected(internal("persist", r.error()));
  co_return ApiResult<void>{};
}

std::vector<std::string> SessionManager::session_env(const UserInfo& user) {
  return {"HOME=" + user.home, "USER=" + user.name, "LOGNAME=" + user.name,
          "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
}

std::string SessionManager::xauthority_in_container(const Session& s) {
  return "/run/appvirt/" + s.id + "/Xauthority";
}

asio::awaitable<ApiResult<void>> SessionManager::start_display(std::shared_ptr<Live> live,
                                                               const UserInfo& user) {
  Session& s = live->s;
  std::vector<std::string> argv = {
      config_.xvfb_path.string(), ":" + std::to_string(s.display), "-auth",
      xauthority_in_container(s), "-screen", "0",
      std::to_string(s.width) + "x" + std::to_string(s.height) + "x24",
      // The file socket in the x11 dir is the one appvirt-rdp uses; no TCP, no abstract socket.
      "-nolisten", "tcp", "-nolisten", "local", "-noreset"};
  if (!config_.xvfb_glx) {
    argv.insert(argv.end(), {"-extension", "GLX"});  // no Mesa in every session (display.glx)
  }
  std::vector<std::string> env = session_env(user);
  std::string what = "xvfb";
  auto xvfb = co_await start_in_container(live, user, argv, env, what);
  if (!xvfb) co_return tl::unexpected(xvfb.error());
  s.xvfb = *xvfb;
  live->xvfb_watch = watch(s.id, s.xvfb, "xvfb");
  auto waited = co_await wait_for_x_socket(live);
  co_return waited;
}

asio::awaitable<ApiResult<void>> SessionManager::start_app(std::shared_ptr<Live> live,
                                                           const UserInfo& user) {
  Session& s = live->s;
  std::vector<std::string> env = session_env(user);
  env.push_back("DISPLAY=:" + std::to_string(s.display));
  env.push_back("XAUTHORITY=" + xauthority_in_container(s));
  std::string what = "app";
  auto app = co_await start_in_container(live, user, s.command, env, what);
  if (!app) co_return tl::unexpected(app.error());
  s.app = *app;
  live->app_watch = watch(s.id, s.app, "app");
  co_return ApiResult<void>{};
}

ApiResult<void> SessionManager::prepare_user_dirs(const UserInfo& user) {
  auto rdp_user = deps_.users.lookup(config_.rdp_user);
  if (!rdp_user) return tl::unexpected(internal("rdp user " + config_.rdp_user, rdp_user.error()));
  std::string base = user_runtime(user.name);
  std::error_code ec;
  fs::create_directories(config_.runtime_dir / "u", ec);
  Result<void> r = make_dir(base, 0, 0, 0755);
  // x11 is /tmp/.X11-unix in the container: the user's Xvfb creates sockets there, the rdp
  // service user (group) reaches them.
  if (r) r = make_dir(base + "/x11", user.uid, rdp_user->gid, 0770);
  if (r) r = make_dir(base + "/run", user.uid, user.gid, 0700);
  if (!r) return tl::unexpected(internal("runtime dir", r.error()));
  return {};
}

ApiResult<void> SessionManager::prepare_session_dirs(const Session& s, const UserInfo& user) {
  auto rdp_user = deps_.users.lookup(config_.rdp_user);
  if (!rdp_user) return tl::unexpected(internal("rdp user " + config_.rdp_user, rdp_user.error()));
  auto cookie = random_cookie();
  if (!cookie) return tl::unexpected(internal("X cookie", cookie.error()));
  std::error_code ec;
  fs::create_directories(config_.runtime_dir / "s", ec);
  Result<void> r = make_dir(session_run_dir(s), user.uid, user.gid, 0700);
  if (r) r = make_dir(endpoint_dir(s), rdp_user->uid, rdp_user->gid, 0700);
  if (r) {
    r = write_xauthority(session_run_dir(s) + "/Xauthority", s.display, *cookie, user.uid,
                         user.gid);
  }
  if (r) {
    r = write_xauthority(endpoint_dir(s) + "/Xauthority", s.display, *cookie, rdp_user->uid,
                         rdp_user->gid);
  }
  if (!r) return tl::unexpected(internal("session dirs", r.error()));
  return {};
}

asio::awaitable<ApiResult<SessionManager::Container*>> SessionManager::ensure_container(
    const UserInfo& user, const Limits& limits) {
  auto it = containers_.find(user.name);
  if (it != containers_.end() && proc_alive(it->second.rec.init)) {
    Container& c = it->second;
    if (!(c.rec.limits == limits)) {
      if (auto r = deps_.cgroups.set_limits(user_cgroup(user.name), limits); !r) {
        spdlog::warn("container set_limits_failed user={} error={}", user.name, log_quote(r.error().str()));
      } else {
        c.rec.limits = limits;
        (void)deps_.store.save_container(c.rec);
      }
    }
    co_return &c;
  }
  if (it != containers_.end()) destroy_container(user.name);  // its init died unnoticed
  if (auto r = prepare_user_dirs(user); !r) co_return tl::unexpected(r.error());
  ContainerSpec spec;
  spec.user = user.name;
  spec.uid = user.uid;
  spec.gid = user.gid;
  spec.groups = user.groups;
  spec.home = user.home;
  spec.runtime_dir = user_runtime(user.name);
  spec.cgroup = user_cgroup(user.name);
  spec.limits = limits;
  auto init = co_await deps_.sandbox.create(spec);
  if (!init) {
    // The helper may have made the cgroup or dirs before failing.
    (void)deps_.cgroups.kill_all(spec.cgroup);
    (void)deps_.cgroups.remove(spec.cgroup);
    (void)remove_tree_safely(spec.runtime_dir);
    co_return api_error(500, "create container for " + user.name + ": " + init.error().str());
  }
  if (init->start_time == 0) {
    if (auto ref = proc_ref(init->pid)) init->start_time = ref->start_time;
  }
  Container& c = containers_[user.name];
  c.rec = ContainerRecord{user.name, user.uid, *init, limits};
  std::string name = user.name;
  auto w = PidWatch::open(executor_, c.rec.init,
                          [this, name, alive = alive_] { if (*alive) on_container_exit(name); });
  if (!w) {
    destroy_container(user.name);
    co_return api_error(500, "container init of " + user.name + " exited at once: " + w.error().str());
  }
  c.init_watch = std::move(*w);
  (void)deps_.store.save_container(c.rec);
  spdlog::info("container created user={} init_pid={}", user.name, init->pid);
  co_return &c;
}

asio::awaitable<ApiResult<ProcRef>> SessionManager::start_in_container(
    std::shared_ptr<Live> live, const UserInfo& user, std::vector<std::string> argv,
    std::vector<std::string> env, const std::string& what) {
  Session& s = live->s;
  auto c = containers_.find(s.user);
  if (c == containers_.end()) co_return api_error(500, "container of " + s.user + " is gone");
  ExecSpec spec;
  spec.init_pid = c->second.rec.init.pid;
  spec.init_start_time = c->second.rec.init.start_time;
  spec.uid = user.uid;
  spec.gid = user.gid;
  spec.groups = user.groups;
  spec.cgroup = s.session_cgroup();
  spec.argv = std::move(argv);
  spec.env = std::move(env);
  spec.cwd = user.home;
  spec.log_file = deps_.store.log_path(s.id, what);
  auto pid = co_await deps_.sandbox.exec(spec);
  if (s.state == SessionState::ended) co_return api_error(409, "session ended during launch");
  if (!pid) co_return api_error(500, "start " + what + ": " + pid.error().str());
  auto ref = proc_ref(*pid);
  if (!ref) {
    if (deps_.reaper) deps_.reaper->reap_now();
    auto status = deps_.reaper ? deps_.reaper->status_of(*pid) : std::nullopt;
    co_return api_error(500, what + " exited right after start" +
                                 (status ? " (" + describe_wait_status(*status) + ")" : "") +
                                 ", see " + spec.log_file);
  }
  co_return *ref;
}

asio::awaitable<ApiResult<void>> SessionManager::wait_for_x_socket(std::shared_ptr<Live> live) {
  // Xvfb binds its socket within a few hundred ms; poll briefly instead of an inotify watch on a
  // directory the user owns. The loop ends early when Xvfb dies or the session is ended.
  Session& s = live->s;
  std::string path = x_socket(s);
  asio::steady_timer timer(executor_);
  auto deadline = std::chrono::steady_clock::now() + config_.xvfb_start_timeout;
  for (;;) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) co_return ApiResult<void>{};
    if (s.state == SessionState::ended) co_return api_error(409, "session ended during launch");
    if (!live->pending_end.empty() || !proc_alive(s.xvfb)) {
      co_return api_error(500, "Xvfb exited before its socket appeared, see " +
                                   deps_.store.log_path(s.id, "xvfb"));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      co_return api_error(504, "Xvfb socket " + path + " did not appear within " +
                                   std::to_string(config_.xvfb_start_timeout.count()) + " ms");
    }
    timer.expires_after(std::chrono::milliseconds(20));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<ApiResult<void>> SessionManager::start_rdp(std::shared_ptr<Live> live) {
  Session& s = live->s;
  if (auto r = deps_.cgroups.create(s.rdp_cgroup()); !r) {
    co_return tl::unexpected(internal("rdp cgroup", r.error()));
  }
  auto procs = deps_.cgroups.open_procs_files(s.rdp_cgroup());
  if (!procs) co_return tl::unexpected(internal("rdp cgroup", procs.error()));
  RdpSpec spec;
  spec.display = s.display;
  spec.x11_dir = user_runtime(s.user) + "/x11";
  spec.xauthority = endpoint_dir(s) + "/Xauthority";
  spec.listen = endpoint_dir(s) + "/rdp.sock";
  spec.listen_tcp = config_.rdp_listen_tcp;
  spec.secret_file = deps_.store.secret_path(s.id);
  spec.cert = config_.tls_cert.string();
  spec.key = config_.tls_key.string();
  spec.run_as = config_.rdp_user;
  spec.log_level = config_.rdp_log_level;
  spec.log_file = deps_.store.log_path(s.id, "rdp");
  spec.status_file = activity_file(s);
  for (const auto& fd : *procs) spec.cgroup_procs_fds.push_back(fd.get());
  auto ep = co_await deps_.rdp.launch(spec);
  if (!ep) co_return api_error(500, "start appvirt-rdp: " + ep.error().str());
  s.rdp = ep->proc;
  s.tcp_port = ep->tcp_port;
  s.endpoint_unix = spec.listen;
  if (s.state == SessionState::ended) co_return api_error(409, "session ended during launch");
  live->rdp_watch = watch(s.id, s.rdp, "rdp");
  co_return ApiResult<void>{};
}

std::unique_ptr<PidWatch> SessionManager::watch(const std::string& id, const ProcRef& ref,
                                                const char* which) {
  std::string w = which;
  auto pw = PidWatch::open(executor_, ref, [this, id, w, alive = alive_] {
    if (*alive) on_process_exit(id, w);
  });
  if (pw) return std::move(*pw);
  // Already gone: report it through the same path, after the caller has stored the ref.
  asio::post(executor_, [this, id, w, alive = alive_] {
    if (*alive) on_process_exit(id, w);
  });
  return nullptr;
}

ApiResult<Session> SessionManager::get(const std::string& id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return api_error(404, "no such session: " + id);
  return it->second->s;
}

std::vector<Session> SessionManager::list() const {
  std::vector<Session> out;
  for (const auto& [id, live] : sessions_) out.push_back(live->s);
  return out;
}

std::size_t SessionManager::active_sessions() const {
  std::size_t n = 0;
  for (const auto& [id, live] : sessions_) n += live->s.state != SessionState::ended;
  return n;
}

ApiResult<Session> SessionManager::logoff(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return api_error(404, "no such session: " + id);
  auto live = it->second;  // end_session may schedule the erase; keep it alive here
  if (live->s.state != SessionState::ended) end_session(*live, "logoff");
  return live->s;
}

ApiResult<Limits> SessionManager::set_user_limits(const std::string& user, const Limits& limits) {
  auto it = containers_.find(user);
  if (it == containers_.end()) return api_error(404, "no container for user " + user);
  Limits merged = merge_limits(limits, config_.default_limits);
  if (auto r = deps_.cgroups.set_limits(user_cgroup(user), merged); !r) {
    return api_error(500, "set limits of " + user + ": " + r.error().str());
  }
  it->second.rec.limits = merged;
  (void)deps_.store.save_container(it->second.rec);
  spdlog::info("container limits_changed user={} limits={}", user, limits_to_json(merged).dump());
  return merged;
}

}  // namespace appvirt::hostd
