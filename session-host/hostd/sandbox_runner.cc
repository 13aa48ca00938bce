#include "session-host/hostd/sandbox_runner.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include "session-host/hostd/pipe_io.h"

namespace appvirt::hostd {

namespace asio = boost::asio;

nlohmann::json to_json(const ContainerSpec& s) {
  return {{"user", s.user},         {"uid", s.uid},
          {"gid", s.gid},           {"groups", s.groups},
          {"home", s.home},         {"runtime_dir", s.runtime_dir},
          {"cgroup", s.cgroup},     {"hostname", s.hostname},
          {"network", s.network},   {"limits", limits_to_json(s.limits)}};
}

nlohmann::json to_json(const ExecSpec& s) {
  nlohmann::json j = {{"init_pid", s.init_pid}, {"uid", s.uid},   {"gid", s.gid},
                      {"groups", s.groups},     {"cgroup", s.cgroup}, {"argv", s.argv},
                      {"env", s.env},           {"cwd", s.cwd},   {"log_file", s.log_file}};
  if (s.init_start_time) j["init_start_time"] = s.init_start_time;
  return j;
}

asio::awaitable<Result<nlohmann::json>> HelperSandboxRunner::run(std::string verb,
                                                                nlohmann::json request) {
  std::string what = binary_.string() + " " + verb;
  // stdin is a socket, not a pipe: send(MSG_NOSIGNAL) to a helper that died early gives EPIPE
  // instead of SIGPIPE, whatever the caller's SIGPIPE disposition.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    co_return fail_errno("socketpair for " + what);
  }
  UniqueFd in_parent(sv[0]), in_child(sv[1]);
  auto out = make_pipe();
  if (!out) co_return fail("pipe for " + what);
  SpawnOptions opts;
  opts.argv = {binary_.string(), verb};
  opts.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  opts.stdin_fd = in_child.get();
  opts.stdout_fd = out->second.get();
  opts.stderr_fd = STDERR_FILENO;  // the helper's diagnostics go to hostd's log stream
  auto pid = spawn_process(opts);
  in_child.reset();
  out->second.reset();
  if (!pid) co_return tl::unexpected(wrap(what, pid.error()));
  // Requests are a few hundred bytes: far below the socket buffer, so this cannot block.
  // A helper that died early shows up as a missing reply.
  std::string body = request.dump() + "\n";
  (void)!::send(in_parent.get(), body.data(), body.size(), MSG_NOSIGNAL);
  ::shutdown(in_parent.get(), SHUT_WR);
  in_parent.reset();
  UniqueFd reply_fd = std::move(out->first);
  auto reply = co_await async_read_pipe(std::move(reply_fd), timeout_, false);
  if (!reply) {
    ::kill(*pid, SIGKILL);  // a hung helper must not linger; the reaper collects it
    co_return tl::unexpected(wrap(what, reply.error()));
  }
  nlohmann::json j = nlohmann::json::parse(*reply, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    co_return fail(what + ": no JSON reply (got \"" + reply->substr(0, 200) + "\")");
  }
  if (!j.value("ok", false)) {
    co_return fail(what + ": " + j.value("error", std::string("failed without a message")));
  }
  co_return j;
}

asio::awaitable<Result<ProcRef>> HelperSandboxRunner::create(ContainerSpec spec) {
  nlohmann::json req = to_json(spec);
  std::string verb = "create";  // named: see the g++ 12 note in common/http_server.h
  auto reply = co_await run(std::move(verb), std::move(req));
  if (!reply) co_return tl::unexpected(reply.error());
  ProcRef init;
  init.pid = reply->value("init_pid", 0);
  init.start_time = reply->value("init_start_time", uint64_t{0});
  if (init.pid <= 0) co_return fail("appvirt-sandbox create: reply without init_pid");
  co_return init;
}

asio::awaitable<Result<pid_t>> HelperSandboxRunner::exec(ExecSpec spec) {
  nlohmann::json req = to_json(spec);
  std::string verb = "exec";
  auto reply = co_await run(std::move(verb), std::move(req));
  if (!reply) co_return tl::unexpected(reply.error());
  pid_t pid = reply->value("pid", 0);
  if (pid <= 0) co_return fail("appvirt-sandbox exec: reply without pid");
  co_return pid;
}

}  // namespace appvirt::hostd
