// appvirt-hostctl: talks to the local hostd over its control socket and prints the JSON reply.
// Exit code 0 for a 2xx reply, 1 for an error reply, 2 when hostd cannot be reached.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/http_client.h"

namespace {

namespace bhttp = boost::beast::http;
using appvirt::http::unix_request;

int print_reply(const appvirt::Result<appvirt::http::ClientResponse>& r) {
  if (!r) {
    std::cerr << "appvirt-hostctl: " << r.error().str() << "\n";
    return 2;
  }
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  std::cout << (j.is_discarded() ? r->body : j.dump(2)) << "\n";
  return r->status >= 200 && r->status < 300 ? 0 : 1;
}

struct LaunchArgs {
  std::string user, app_id, memory_max, isolation;
  std::optional<int> width, height, cpu_weight, cpu_max;
  std::optional<int64_t> pids_max, idle_timeout, disconnect_timeout;
  std::vector<std::string> argv;
};

std::optional<nlohmann::json> launch_body(const LaunchArgs& a) {
  nlohmann::json limits = nlohmann::json::object();
  if (!a.memory_max.empty()) {
    auto bytes = appvirt::parse_size(a.memory_max);
    if (!bytes) {
      std::cerr << "appvirt-hostctl: --memory-max: not a size (e.g. 512M, 2G)\n";
      return std::nullopt;
    }
    limits["memory_max"] = *bytes;
  }
  if (a.cpu_weight) limits["cpu_weight"] = *a.cpu_weight;
  if (a.cpu_max) limits["cpu_max_percent"] = *a.cpu_max;
  if (a.pids_max) limits["pids_max"] = *a.pids_max;
  nlohmann::json body = {{"user", a.user}, {"app_id", a.app_id}, {"command", a.argv},
                         {"limits", limits}};
  if (a.width) body["width"] = *a.width;
  if (a.height) body["height"] = *a.height;
  if (a.idle_timeout) body["idle_timeout_s"] = *a.idle_timeout;
  if (a.disconnect_timeout) body["disconnect_timeout_s"] = *a.disconnect_timeout;
  if (!a.isolation.empty()) body["isolation"] = a.isolation;
  return body;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"appvirt-hostctl: control the local appvirt-hostd"};
  std::string socket = "/run/appvirt/hostd.sock";
  int timeout_s = 60;
  app.add_option("--socket", socket, "hostd control socket");
  app.add_option("--timeout", timeout_s, "seconds to wait for a reply");
  app.require_subcommand(1);

  LaunchArgs la;
  auto* launch = app.add_subcommand("launch", "start a session: launch --user U --app ID -- argv...");
  launch->add_option("--user", la.user, "user to run the app as")->required();
  launch->add_option("--app", la.app_id, "application id")->required();
  launch->add_option("--width", la.width, "screen width");
  launch->add_option("--height", la.height, "screen height");
  launch->add_option("--memory-max", la.memory_max, "memory limit of the user's container (512M, 2G)");
  launch->add_option("--pids-max", la.pids_max, "process limit of the user's container");
  launch->add_option("--cpu-weight", la.cpu_weight, "cpu weight 1..10000 (100 = default)");
  launch->add_option("--cpu-max", la.cpu_max, "cpu cap in percent of one core");
  launch->add_option("--idle-timeout", la.idle_timeout,
                     "seconds connected without input before the session ends (0 = never)");
  launch->add_option("--disconnect-timeout", la.disconnect_timeout,
                     "seconds without a connected client before the session ends (0 = never)");
  launch->add_option("--isolation", la.isolation, "container (default) or vm ([vm] in hostd.toml)")
      ->check(CLI::IsMember({"container", "vm"}));
  launch->add_option("argv", la.argv, "command (absolute path first)")->required();
  auto* list = app.add_subcommand("list", "list sessions");
  std::string id;
  auto* status = app.add_subcommand("status", "show one session");
  status->add_option("id", id, "session id")->required();
  auto* terminate = app.add_subcommand("terminate", "log a session off");
  terminate->add_option("id", id, "session id")->required();
  auto* health = app.add_subcommand("health", "hostd health");
  CLI11_PARSE(app, argc, argv);

  auto timeout = std::chrono::milliseconds(timeout_s * 1000);
  if (*launch) {
    auto body = launch_body(la);
    if (!body) return 2;
    return print_reply(unix_request(socket, bhttp::verb::post, "/v1/sessions", body->dump(), timeout));
  }
  if (*list) return print_reply(unix_request(socket, bhttp::verb::get, "/v1/sessions", "", timeout));
  if (*status) {
    return print_reply(unix_request(socket, bhttp::verb::get, "/v1/sessions/" + id, "", timeout));
  }
  if (*terminate) {
    return print_reply(unix_request(socket, bhttp::verb::delete_, "/v1/sessions/" + id, "", timeout));
  }
  if (*health) return print_reply(unix_request(socket, bhttp::verb::get, "/v1/health", "", timeout));
  return 2;
}
