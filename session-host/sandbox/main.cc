// appvirt-sandbox: the single-threaded helper hostd runs for namespace work (so no namespace
// setup ever runs in a forked copy of the multithreaded daemon). One JSON request on stdin,
// one JSON reply on stdout, exit code 0 / 1. See docs/session-host.md and docs/sandbox.md.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "common/log.h"
#include "session-host/sandbox/cgroup.h"
#include "session-host/sandbox/container.h"
#include "session-host/sandbox/exec.h"
#include "session-host/sandbox/request.h"

namespace {

using namespace appvirt;
using namespace appvirt::sandbox;

Result<nlohmann::json> run_create(const std::string& input, const std::string& cgroup_root) {
  auto req = parse_create_request(input);
  if (!req) return tl::unexpected(req.error());
  auto plan = plan_container(*req);
  if (!plan) return tl::unexpected(plan.error());
  auto cgroups = CgroupDriver::detect(linux_sys(), cgroup_root);
  if (!cgroups) return tl::unexpected(cgroups.error());
  auto created = create_container(linux_sys(), **cgroups, *plan);
  if (!created) return tl::unexpected(wrap("create container " + req->user, created.error()));
  spdlog::info("container-created user={} init_pid={} cgroup={}", req->user, created->init_pid,
               req->cgroup);
  return nlohmann::json{{"init_pid", created->init_pid},
                        {"init_start_time", created->init_start_time}};
}

Result<nlohmann::json> run_exec(const std::string& input, const std::string& cgroup_root) {
  auto req = parse_exec_request(input);
  if (!req) return tl::unexpected(req.error());
  auto cgroups = CgroupDriver::detect(linux_sys(), cgroup_root);
  if (!cgroups) return tl::unexpected(cgroups.error());
  auto pid = exec_in_container(linux_sys(), **cgroups, *req);
  if (!pid) return tl::unexpected(wrap("exec " + req->argv[0], pid.error()));
  return nlohmann::json{{"pid", *pid}};
}

int reply(const Result<nlohmann::json>& result) {
  if (!result) {
    spdlog::error("sandbox-request-failed error={}", log_quote(result.error().str()));
    std::cout << reply_error(result.error()) << std::endl;
    return 1;
  }
  std::cout << reply_ok(*result) << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "appvirt-sandbox: creates per-user containers and starts processes in them.\n"
      "Reads one JSON request on stdin, writes one JSON reply on stdout (docs/session-host.md)."};
  std::string log_level = "info";
  std::string cgroup_root = "/sys/fs/cgroup";
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");
  app.add_option("--cgroup-root", cgroup_root, "where the cgroup hierarchies are mounted");
  app.require_subcommand(1);
  CLI::App* create = app.add_subcommand(
      "create",
      "create a user's container; stdin {\"user\",\"uid\",\"gid\",\"groups\",\"home\","
      "\"runtime_dir\",\"cgroup\",\"hostname\"?,\"network\"?,\"limits\"?,\"log_file\"?}");
  CLI::App* exec = app.add_subcommand(
      "exec",
      "start a process in a container; stdin {\"init_pid\",\"init_start_time\"?,\"uid\","
      "\"gid\",\"groups\",\"cgroup\",\"argv\",\"env\"?,\"cwd\"?,\"log_file\"?}");
  CLI11_PARSE(app, argc, argv);

  appvirt::init_logging("appvirt-sandbox", log_level);
  ::umask(022);  // what the container's processes inherit, whatever hostd's umask is
  std::string input(std::istreambuf_iterator<char>(std::cin), {});
  if (create->parsed()) return reply(run_create(input, cgroup_root));
  if (exec->parsed()) {
    int rc = reply(run_exec(input, cgroup_root));
    // The helper now lives in the container's namespaces. A normal exit would run atexit
    // handlers such as LeakSanitizer's, whose tracer task would be born in the container's pid
    // namespace and cannot find the helper there (it spins); nothing is left to clean up.
    std::cout.flush();
    std::fflush(nullptr);
    ::_exit(rc);
  }
  return 2;
}
