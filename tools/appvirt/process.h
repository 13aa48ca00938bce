#pragma once
// Starting child processes for `appvirt up`: daemons (own process group, so a terminal's Ctrl-C
// reaches only appvirt up, which then stops them in order; SIGTERM if appvirt up dies) and short
// commands (useradd, chpasswd) run to completion.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::up {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path
  std::string log_file;           // stdout and stderr, appended; empty = inherit
  int stdin_fd = -1;              // -1 = /dev/null
  bool own_process_group = false;
  bool term_on_parent_death = false;
};

Result<pid_t> spawn(const SpawnSpec& spec);

// Runs argv to completion, writing stdin_text to its stdin; returns the wait status.
Result<int> run_command(const std::vector<std::string>& argv, const std::string& stdin_text = {});

// "exited with status 1" / "killed by signal 9".
std::string describe_status(int wait_status);

}  // namespace appvirt::up
