#include "tests/tools/probe_options.h"

#include <CLI/CLI.hpp>

namespace appvirt::probe {

namespace {

void add_connection_options(CLI::App& app, ProbeOptions& o) {
  app.add_option("target", o.target, "RDP server: /path/to/unix.sock or host:port")->required();
  app.add_option("--cookie", o.cookie,
                 "X.224 routing cookie line sent verbatim, e.g. 'Cookie: msts=<secret>'");
  app.add_option("--user", o.user, "user name (TLS security: sent in the Client Info PDU)");
  app.add_option("--password", o.password, "password");
  app.add_option("--width", o.width, "requested desktop width")->check(CLI::Range(64, 8192));
  app.add_option("--height", o.height, "requested desktop height")->check(CLI::Range(64, 8192));
  app.add_option("--bpp", o.bpp, "colour depth")->check(CLI::IsMember({16, 24, 32}));
  app.add_flag("--lossless", o.lossless,
               "planar/interleaved bitmaps only: no GFX, RemoteFX, NSCodec or H.264");
  app.add_option("--timeout-ms", o.timeout_ms, "overall time limit from the start")
      ->check(CLI::Range(1, 3600000));
  app.add_option("--log-level", o.log_level, "FreeRDP log level on stderr")
      ->check(CLI::IsMember({"off", "fatal", "error", "warn", "info", "debug", "trace"}));
  app.add_flag("--stock-sleep", o.stock_sleep,
               "keep FreeRDP's Sleep(100) ticks in the connection sequence (by default the probe "
               "wakes as soon as server data arrives, so timings measure the server)");
}

void add_frame_options(CLI::App& app, ProbeOptions& o) {
  app.add_option("--out", o.out_png, "write the final frame to this PNG file");
  auto* pat = app.add_option("--expect-pattern", o.expect_pattern,
                             "compare every pixel with test pattern VARIANT");
  pat->check(CLI::Range(0, 1000000));
  app.add_option("--expect-png", o.expect_png, "compare every pixel with this PNG")->excludes(pat);
  app.add_flag("--wait-match", o.wait_match,
               "compare after every update until the frame matches or the timeout");
  app.add_option("--settle-ms", o.settle_ms,
                 "without --wait-match: the frame is final after this long without updates")
      ->check(CLI::Range(0, 600000));
  app.add_option("--hold-ms", o.hold_ms, "stay connected this long after success")
      ->check(CLI::Range(0, 86400000));
  app.add_option("--ready-fd", o.ready_fd,
                 "write \"ready\" and a newline to this fd on success, before --hold-ms, then "
                 "close it (benchmarks: know when N held clients are all connected)")
      ->check(CLI::Range(3, 65535));
}

void add_input_options(CLI::App& app, ProbeOptions& o) {
  app.add_option("--type-text", o.type_text, "type this text after the first frame");
  app.add_option("--type-interval-ms", o.type_interval_ms, "delay between typed characters")
      ->check(CLI::Range(0, 600000));
  app.add_flag("--type-unicode", o.type_unicode,
               "send Unicode key events instead of US-layout scancodes");
}

}  // namespace

std::optional<ProbeOptions> parse_probe_options(int argc, char** argv, int* exit_code) {
  ProbeOptions o;
  CLI::App app{
      "rdp-probe: headless RDP client (FreeRDP + GDI) that checks pixels and prints one JSON "
      "object on stdout. Exit 0 when connected, a frame arrived and (if asked) it matched."};
  app.option_defaults()->always_capture_default();
  add_connection_options(app, o);
  add_frame_options(app, o);
  add_input_options(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    *exit_code = rc == 0 ? 0 : 2;
    return std::nullopt;
  }
  if (o.wait_match && !o.wants_compare()) {
    std::fprintf(stderr, "--wait-match needs --expect-pattern or --expect-png\n");
    *exit_code = 2;
    return std::nullopt;
  }
  return o;
}

}  // namespace appvirt::probe
