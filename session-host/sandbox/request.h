#pragma once
// Requests and replies of the appvirt-sandbox helper (docs/session-host.md): JSON text in, one
// validated struct out. Parsing is apart from applying; every error names the field.
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "session-host/sandbox/cgroup.h"

namespace appvirt::sandbox {

// Who the processes of a container run as.
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

struct CreateRequest {
  std::string user;
  Identity id;
  std::string home;         // bound read-write at the same path inside
  std::string runtime_dir;  // host dir with x11/ and run/ (docs/session-host.md)
  std::string cgroup;       // e.g. appvirt/u-alice; the init lives in <cgroup>/init
  std::string hostname = "appvirt";
  std::string network = "loopback";
  Limits limits;
  std::string log_file;  // optional: stdout/stderr of the container init (else /dev/null)
};

struct ExecRequest {
  pid_t init_pid = 0;
  std::optional<uint64_t> init_start_time;  // when given, must match (pid reuse guard)
  Identity id;
  std::string cgroup;  // created if missing, e.g. appvirt/u-alice/s-<sid>
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::string log_file;  // optional: stdout/stderr of the process (else /dev/null)
};

Result<CreateRequest> parse_create_request(std::string_view text);
Result<ExecRequest> parse_exec_request(std::string_view text);

// The "limits" object: {"memory_max","cpu_weight","cpu_max_percent","pids_max"}, all optional.
Result<Limits> limits_from_json(const nlohmann::json& j);
nlohmann::json limits_to_json(const Limits& limits);

// {"ok":true, ...fields} / {"ok":false,"error":"..."}
std::string reply_ok(nlohmann::json fields);
std::string reply_error(const Error& error);

}  // namespace appvirt::sandbox
