#pragma once
// appvirt-hostd as a child process for end-to-end tests: its config file under the test's
// directory, the start that waits for /v1/health, and the stop that removes everything real
// sessions leave (processes, endpoints, zombies, cgroups). Every wait is bounded.
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "tests/tools/test_support.h"
#include "tests/tools/test_users.h"

namespace appvirt::testing {

struct HostdSetup {
  std::string binary{}, sandbox{}, rdp{};  // appvirt-hostd and the programs it runs
  std::string dir{};        // <dir>/hostd.toml, <dir>/run (the socket), the state directory
  std::string state = "hostd";  // state_dir = <dir>/<state>
  std::string log_level{};  // empty: hostd's default
  std::string extra{};      // appended to hostd.toml: whole tables, e.g. "[vm]\n..."
};

// <dir>/run/hostd.sock: where a hostd of write_hostd_config listens.
std::string hostd_socket(const std::string& dir);
// Writes <dir>/hostd.toml.
Result<void> write_hostd_config(const HostdSetup& setup);
// Spawns `binary --config <dir>/hostd.toml <flags>` with its log (stderr) in log_file and waits
// until GET /v1/health answers 200 on its socket; the error carries the log.
Result<Child> start_hostd(const HostdSetup& setup, const std::vector<std::string>& flags,
                          const std::string& log_file,
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));
// The ids of the sessions hostd lists (none when it does not answer).
std::set<std::string> hostd_session_ids(const std::string& socket);

// Stops hostd (if running; SIGTERM, SIGKILL after the grace) having noted its sessions, then
// removes what the sessions of `users` and `sessions` (and hostd's list) leave: the users'
// processes, the sessions' endpoints, zombies re-parented to this (subreaper) process, the
// cgroups appvirt/u-<user> and appvirt/rdp/s-<id>. Needs root.
void stop_hostd_and_clean_up(Child& hostd, const std::string& dir,
                             const std::vector<const TempUser*>& users,
                             std::set<std::string> sessions = {});

}  // namespace appvirt::testing
