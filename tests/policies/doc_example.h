#pragma once
// The example file of docs/policies.md, verbatim (keep the two in step): the tests check what the
// document says about it.
namespace appvirt::policies::test_data {

inline constexpr const char* kDocExample = R"(# /etc/appvirt/policies.toml
[defaults]
isolation = "container"
memory_max = "1G"
cpu_weight = 100
cpu_max = 200
pids_max = 512
max_sessions = 5
idle_timeout = "2h"
disconnect_timeout = "15m"
apps = ["*"]
clipboard = "both"
drive_redirection = false
network = "loopback"
max_resolution = "1920x1080"

[groups.staff]
memory_max = "2G"
drive_redirection = true

[groups.developers]
priority = 5
memory_max = "4G"
cpu_max = 400
apps = ["xterm", "code", "firefox"]

[groups.contractors]
priority = 10
clipboard = "to-client"
apps = ["xterm", "firefox"]
idle_timeout = "30m"

[users.alice]
memory_max = "8G"
isolation = "vm"

[users."john.doe"]      # names outside A-Z a-z 0-9 _ - are quoted (TOML rule)
max_sessions = 1
)";

}  // namespace appvirt::policies::test_data
