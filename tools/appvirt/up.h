#pragma once
// `appvirt up`: the all-in-one start on one machine (docs/up.md). Writes the configs, makes the
// demo user, starts hostd, broker and gateway in that order, waits for each, prints where to
// connect, and on SIGTERM/SIGINT stops gateway, broker, then hostd (which ends every session).
#include <string>

#include "tools/appvirt/up_files.h"
#include "tools/appvirt/up_options.h"

namespace appvirt::up {

// Exit code: 0 after a requested stop with every daemon stopped cleanly, 1 otherwise.
int run_up(UpOptions opts);

// What to print once everything is ready. The password appears only here (stdout), never in a
// log line.
std::string render_banner(const UpOptions& opts, const Layout& layout,
                          const std::vector<DemoApp>& apps, bool user_created);

// 'text' for a POSIX shell.
std::string shell_quote(const std::string& text);

}  // namespace appvirt::up
