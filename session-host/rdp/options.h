#pragma once
// appvirt-rdp's command line (docs/session-host.md), parsed and validated into one struct.
#include <filesystem>
#include <optional>
#include <string>

namespace appvirt::rdp {

struct RdpOptions {
  std::string display;  // ":201"
  std::filesystem::path x11_dir;
  std::filesystem::path xauthority;
  std::filesystem::path listen;
  std::optional<std::string> listen_tcp;  // "127.0.0.1:0"
  std::filesystem::path secret_file;
  std::filesystem::path cert;
  std::filesystem::path key;
  std::string run_as;
  int ready_fd = -1;
  std::filesystem::path status_file;  // empty: no activity report
  std::string log_level = "info";
  std::string capture = "damage";  // damage | stock (shadow_host.h CaptureMode)
  std::string codecs = "lossless";  // lossless | stock (shadow_host.h CodecPolicy)
};

// Fills `out` from argv. Returns an exit code when the process should end now (--help: 0,
// bad arguments: 2, message printed), nullopt to go on.
std::optional<int> parse_options(int argc, char** argv, RdpOptions& out);

}  // namespace appvirt::rdp
