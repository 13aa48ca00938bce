#include "tests/session-host/hostd/hostd_process.h"

#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/http_client.h"

namespace appvirt::testing {

using namespace std::chrono_literals;

std::string hostd_socket(const std::string& dir) { return dir + "/run/hostd.sock"; }

Result<void> write_hostd_config(const HostdSetup& setup) {
  const std::string path = setup.dir + "/hostd.toml";
  std::ofstream out(path);
  out << "state_dir = \"" << setup.dir << "/" << setup.state << "\"\n"
      << "runtime_dir = \"" << setup.dir << "/run\"\n";
  if (!setup.log_level.empty()) out << "log_level = \"" << setup.log_level << "\"\n";
  out << "[paths]\nsandbox = \"" << setup.sandbox << "\"\nrdp = \"" << setup.rdp << "\"\n"
      << setup.extra;
  out.close();
  if (!out) return fail("writing " + path + " failed");
  return {};
}

Result<Child> start_hostd(const HostdSetup& setup, const std::vector<std::string>& flags,
                          const std::string& log_file, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {setup.binary, "--config", setup.dir + "/hostd.toml"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  SpawnOptions o;
  o.stderr_file = log_file;
  auto child = Child::spawn(argv, o);
  if (!child) return child;
  const std::string socket = hostd_socket(setup.dir);
  bool up = eventually([&] {
    auto r = http::unix_request(socket, http::bhttp::verb::get, "/v1/health", "", 2s);
    return r && r->status == 200;
  }, timeout);
  if (!up) return fail("hostd did not answer /v1/health: " + read_text_file(log_file));
  return child;
}

std::set<std::string> hostd_session_ids(const std::string& socket) {
  std::set<std::string> ids;
  auto r = http::unix_request(socket, http::bhttp::verb::get, "/v1/sessions", "", 10s);
  if (!r || r->status != 200) return ids;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("sessions") || !j["sessions"].is_array()) return ids;
  for (const auto& s : j["sessions"]) ids.insert(s.value("session_id", ""));
  ids.erase("");
  return ids;
}

void stop_hostd_and_clean_up(Child& hostd, const std::string& dir,
                             const std::vector<const TempUser*>& users,
                             std::set<std::string> sessions) {
  if (hostd.running()) {
    sessions.merge(hostd_session_ids(hostd_socket(dir)));
    hostd.terminate(15s);  // with --terminate-sessions-on-exit it ends every session
  }
  for (const TempUser* u : users) {
    if (!u || !u->ok()) continue;
    for (pid_t p : pids_of_uid(u->uid())) ::kill(p, SIGKILL);
  }
  for (const auto& id : sessions) {
    for (pid_t p : pids_mentioning(dir + "/run/s/" + id)) ::kill(p, SIGKILL);
  }
  eventually([&] {
    reap_orphans();
    for (const TempUser* u : users) {
      if (u && u->ok() && !pids_of_uid(u->uid()).empty()) return false;
    }
    return true;
  }, 5s);
  for (const TempUser* u : users) {
    if (u) remove_cgroup("appvirt/u-" + u->name());
  }
  for (const auto& id : sessions) remove_cgroup("appvirt/rdp/s-" + id);
}

}  // namespace appvirt::testing
