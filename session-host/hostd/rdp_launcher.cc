#include "session-host/hostd/rdp_launcher.h"

#include <fcntl.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "session-host/hostd/pipe_io.h"

namespace appvirt::hostd {

namespace asio = boost::asio;

std::vector<std::string> rdp_argv(const std::filesystem::path& binary, const RdpSpec& s) {
  std::vector<std::string> argv = {binary.string(),
                                   "--display", ":" + std::to_string(s.display),
                                   "--x11-dir", s.x11_dir,
                                   "--xauthority", s.xauthority,
                                   "--listen", s.listen};
  if (s.listen_tcp) argv.insert(argv.end(), {"--listen-tcp", "127.0.0.1:0"});
  argv.insert(argv.end(), {"--secret-file", s.secret_file, "--cert", s.cert, "--key", s.key,
                           "--run-as", s.run_as, "--ready-fd", "3", "--log-level", s.log_level});
  if (!s.status_file.empty()) argv.insert(argv.end(), {"--status-file", s.status_file});
  return argv;
}

asio::awaitable<Result<RdpEndpoint>> ProcessRdpLauncher::launch(RdpSpec spec) {
  auto ready = make_pipe();
  if (!ready) co_return tl::unexpected(ready.error());
  UniqueFd log(::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) co_return fail_errno("open(" + spec.log_file + ")");
  SpawnOptions opts;
  opts.argv = rdp_argv(binary_, spec);
  opts.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"};
  opts.stdout_fd = log.get();
  opts.stderr_fd = log.get();
  opts.extra_fds = {ready->second.get()};
  opts.cgroup_procs_fds = spec.cgroup_procs_fds;
  auto pid = spawn_process(opts);
  ready->second.reset();  // only the child holds the write end: EOF when it dies
  if (!pid) co_return tl::unexpected(wrap("appvirt-rdp", pid.error()));
  auto ref = proc_ref(*pid);
  UniqueFd ready_fd = std::move(ready->first);
  auto line = co_await async_read_pipe(std::move(ready_fd), ready_timeout_, true, 4096);
  auto fail_kill = [&](std::string why) {
    ::kill(*pid, SIGKILL);
    return fail("appvirt-rdp (pid " + std::to_string(*pid) + ", log " + spec.log_file +
                "): " + why);
  };
  if (!line) co_return fail_kill(line.error().message);
  nlohmann::json j = nlohmann::json::parse(*line, nullptr, false);
  if (j.is_discarded() || !j.value("ready", false)) {
    co_return fail_kill(line->empty() ? "exited before it was ready"
                                      : "unexpected ready line: " + line->substr(0, 200));
  }
  if (!ref) co_return fail_kill("exited right after start");
  co_return RdpEndpoint{*ref, j.value("tcp_port", 0)};
}

}  // namespace appvirt::hostd
