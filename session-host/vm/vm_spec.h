#pragma once
// What one VM session is: the golden image it boots, the guest's size, the session's user and
// app, and where its host-side files live. Parsed and validated once (validate_spec), then
// applied (qemu_command.h, vm_session.h).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::vm {

enum class Accel { kTcg, kKvm };
const char* accel_name(Accel a);

// A built golden image (deploy/build-vm-image.sh): <dir>/{vmlinuz,initrd.img,rootfs.qcow2}.
struct VmImage {
  std::string kernel;
  std::string initrd;
  std::string disk;     // read-only backing file of every session's overlay
  std::string cmdline;  // kernel command line from manifest.json
};

// Reads <dir>/manifest.json and checks the three files exist. The paths are canonical
// (symlinks such as `current` resolved): they become the overlays' backing file names.
Result<VmImage> load_image(const std::string& dir);

struct VmSpec {
  std::string session_id;  // [A-Za-z0-9_-]{1,64}
  std::string user;        // guest user, created by the guest agent
  uint32_t uid = 0, gid = 0;
  std::vector<std::string> argv;  // the app, absolute path first
  int width = 1024, height = 768;
  uint64_t memory_mib = 512;
  int vcpus = 1;
  Accel accel = Accel::kTcg;
  VmImage image;
  std::string session_dir;  // host dir (created 0700): overlay, sockets, fw_cfg files, logs
  int host_port = 0;        // 127.0.0.1:<host_port> forwards to the guest's RDP port
  std::string secret;       // the session secret appvirt-rdp in the guest checks
  // Host files handed to the guest over fw_cfg. Empty: a self-signed pair made for this
  // session only, so a compromised guest holds no key that other sessions use.
  std::string tls_cert, tls_key;
  bool network_restricted = true;  // user-mode net with restrict=on: the guest reaches nothing
  std::string qemu = "/usr/bin/qemu-system-x86_64";
  std::string qemu_img = "/usr/bin/qemu-img";
  std::optional<std::string> run_as;  // QEMU drops to this user after opening its files
};

constexpr int kGuestRdpPort = 3389;
// TCG's translation cache (-accel tcg,tb-size=), and what QEMU needs beyond the guest's RAM
// (that cache, QEMU's own heap, device and network buffers): hostd's memory limit for a VM
// session's QEMU is memory_mib + kQemuOverheadMib.
constexpr uint64_t kTcgTbSizeMib = 128;
constexpr uint64_t kQemuOverheadMib = 384;
constexpr const char* kGuestIp = "10.0.2.15";

// Every problem at once, "; "-separated, naming the field.
Result<void> validate_spec(const VmSpec& spec);

}  // namespace appvirt::vm
