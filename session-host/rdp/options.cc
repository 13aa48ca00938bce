#include "session-host/rdp/options.h"

#include <CLI/CLI.hpp>
#include <string_view>

namespace appvirt::rdp {
namespace {

bool all_digits(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// ":201" or ":201.0"
bool is_display_name(std::string_view d) {
  if (d.empty() || d.front() != ':') return false;
  d.remove_prefix(1);
  size_t dot = d.find('.');
  if (dot == std::string_view::npos) return all_digits(d, 5);
  return all_digits(d.substr(0, dot), 5) && all_digits(d.substr(dot + 1), 3);
}

}  // namespace

std::optional<int> parse_options(int argc, char** argv, RdpOptions& out) {
  CLI::App app{
      "appvirt-rdp: the RDP endpoint of one session display. Serves the display over RDP "
      "(FreeRDP shadow server) to clients whose X.224 cookie is \"Cookie: msts=<secret>\"."};
  app.add_option("--display", out.display, "X display of the session, e.g. :201")->required();
  app.add_option("--x11-dir", out.x11_dir, "host directory holding the display's X socket")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--xauthority", out.xauthority, "Xauthority file with the display's cookie")
      ->required();
  app.add_option("--listen", out.listen, "Unix socket path to listen on")->required();
  app.add_option("--listen-tcp", out.listen_tcp, "also listen on host:port (port 0: any)");
  app.add_option("--secret-file", out.secret_file, "file holding the session secret")
      ->required();
  app.add_option("--cert", out.cert, "TLS certificate (PEM)")->required();
  app.add_option("--key", out.key, "TLS private key (PEM, RSA)")->required();
  app.add_option("--run-as", out.run_as, "unprivileged user to serve as")->required();
  app.add_option("--ready-fd", out.ready_fd,
                 "fd to write {\"ready\":true,\"tcp_port\":N} to once listening")
      ->check(CLI::Range(3, 1 << 20));
  app.add_option("--status-file", out.status_file,
                 "file to keep the activity report in (clients, last input), for hostd");
  app.add_option("--log-level", out.log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--capture", out.capture,
                 "damage: capture only what XDamage reports changed (default); stock: FreeRDP's "
                 "built-in X11 subsystem, which polls the whole screen 16 times a second")
      ->check(CLI::IsMember({"damage", "stock"}));
  app.add_option("--codecs", out.codecs,
                 "lossless: planar/interleaved bitmaps only (default); stock: FreeRDP's choice "
                 "(GFX with full-screen H.264 when the client offers it)")
      ->check(CLI::IsMember({"lossless", "stock"}));
  try {
    app.parse(argc, argv);
    if (!is_display_name(out.display)) {
      throw CLI::ValidationError("--display", "must look like :201");
    }
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);  // prints help or the error
    return code == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace appvirt::rdp
