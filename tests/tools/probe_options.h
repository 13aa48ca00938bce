#pragma once
// Command line of rdp-probe, parsed into one struct before anything touches FreeRDP.
#include <optional>
#include <string>

namespace appvirt::probe {

struct ProbeOptions {
  std::string target;  // "/path/to/unix.sock" or "host:port"
  std::string cookie;  // sent verbatim (+CRLF) in the X.224 request, e.g. "Cookie: msts=..."
  std::string user;
  std::string password;
  int width = 1024;
  int height = 768;
  int bpp = 32;
  bool lossless = false;
  int timeout_ms = 10000;
  std::string out_png;
  std::optional<int> expect_pattern;
  std::string expect_png;
  bool wait_match = false;
  int settle_ms = 300;
  int hold_ms = 0;
  int ready_fd = -1;  // gets "ready\n" (then closed) on success, before --hold-ms
  std::string type_text;
  int type_interval_ms = 100;
  bool type_unicode = false;
  std::string log_level = "off";  // FreeRDP's log level on stderr
  bool stock_sleep = false;         // keep FreeRDP's 100 ms connect ticks (see sleep_shortcut.h)

  bool wants_compare() const { return expect_pattern.has_value() || !expect_png.empty(); }
};

// Parses argv. Returns nullopt and sets *exit_code when the program should exit right away
// (--help: 0, usage error: 2; CLI11 has printed the message).
std::optional<ProbeOptions> parse_probe_options(int argc, char** argv, int* exit_code);

}  // namespace appvirt::probe
