#pragma once
// VmSpec -> the host-side file layout of a session and QEMU's argv. Pure functions: no I/O.
#include <string>
#include <vector>

#include "session-host/vm/vm_spec.h"

namespace appvirt::vm {

// Files of one session under spec.session_dir.
struct VmPaths {
  std::string dir;
  std::string overlay;       // overlay.qcow2, backed by the golden disk
  std::string qmp_socket;    // qmp.sock (QMP, server)
  std::string agent_socket;  // agent.sock (virtio-serial "appvirt.agent", server)
  std::string console_log;   // console.log (ttyS0)
  std::string qemu_log;      // qemu.log (QEMU's stderr)
  std::string guest_config;  // guest.conf  -> fw_cfg opt/appvirt/config
  std::string secret;        // secret      -> fw_cfg opt/appvirt/secret
  std::string tls_cert;      // tls.crt / tls.key: the session's own pair when the spec names none
  std::string tls_key;
};
VmPaths vm_paths(const std::string& session_dir);

// argv of `qemu-img create` for the session's linked clone.
std::vector<std::string> overlay_command(const VmSpec& spec, const VmPaths& paths);

// The full QEMU argv (argv[0] = spec.qemu).
std::vector<std::string> qemu_command(const VmSpec& spec, const VmPaths& paths);

// The guest agent's config (deploy/vm/guest-agent): key=value lines; argv as single-quoted
// shell words, which the agent evaluates into an array.
std::string guest_config_text(const VmSpec& spec);

// 'word' with every ' written as '\'' — safe for any byte string but NUL.
std::string shell_quote(const std::string& word);

}  // namespace appvirt::vm
