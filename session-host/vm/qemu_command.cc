#include "session-host/vm/qemu_command.h"

namespace appvirt::vm {

VmPaths vm_paths(const std::string& session_dir) {
  const std::string d = session_dir;
  return VmPaths{d,
                 d + "/overlay.qcow2",
                 d + "/qmp.sock",
                 d + "/agent.sock",
                 d + "/console.log",
                 d + "/qemu.log",
                 d + "/guest.conf",
                 d + "/secret",
                 d + "/tls.crt",
                 d + "/tls.key"};
}

std::vector<std::string> overlay_command(const VmSpec& spec, const VmPaths& paths) {
  // Reads the golden image's size; running sessions hold it read-only (shared lock), which
  // allows this.
  return {spec.qemu_img, "create",        "-q",         "-f", "qcow2", "-F", "qcow2",
          "-b",          spec.image.disk, paths.overlay};
}

namespace {

std::vector<std::string> machine_args(const VmSpec& spec) {
  // q35 has ACPI, so QMP system_powerdown reaches the guest as a power-button press.
  std::vector<std::string> a = {"-machine", "q35",
                                "-m",       std::to_string(spec.memory_mib) + "M",
                                "-smp",     std::to_string(spec.vcpus)};
  if (spec.accel == Accel::kKvm) {
    a.insert(a.end(), {"-accel", "kvm", "-cpu", "host"});
  } else {
    // Multi-threaded TCG: one host thread per vCPU. The translation cache is bounded (QEMU's
    // default may reach 1 GiB), so that QEMU's memory has a known ceiling: hostd's cgroup for
    // it allows the guest's RAM plus kQemuOverheadMib (vm_spec.h).
    a.insert(a.end(), {"-accel", "tcg,thread=multi,tb-size=" + std::to_string(kTcgTbSizeMib),
                       "-cpu", "max"});
  }
  return a;
}

std::vector<std::string> boot_args(const VmSpec& spec, const VmPaths& p) {
  return {"-kernel", spec.image.kernel,
          "-initrd", spec.image.initrd,
          "-append", spec.image.cmdline,
          "-drive",  "file=" + p.overlay + ",if=virtio,format=qcow2,discard=unmap,cache=writeback"};
}

std::vector<std::string> net_args(const VmSpec& spec) {
  // Only 127.0.0.1 on the host side: the gateway (or hostd) reaches the endpoint, no one else.
  std::string netdev = "user,id=net0";
  if (spec.network_restricted) netdev += ",restrict=on";
  netdev += ",hostfwd=tcp:127.0.0.1:" + std::to_string(spec.host_port) + "-" + kGuestIp + ":" +
            std::to_string(kGuestRdpPort);
  return {"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"};
}

std::vector<std::string> channel_args(const VmPaths& p) {
  return {"-chardev", "socket,id=qmp,path=" + p.qmp_socket + ",server=on,wait=off",
          "-mon",     "chardev=qmp,mode=control",
          "-device",  "virtio-serial-pci",
          "-chardev", "socket,id=agent,path=" + p.agent_socket + ",server=on,wait=off",
          "-device",  "virtserialport,chardev=agent,name=appvirt.agent",
          "-serial",  "file:" + p.console_log};
}

// Session data reaches the guest as fw_cfg files: QEMU reads them from root-only host files,
// so no secret is on a command line, and in the guest only root can read them.
std::vector<std::string> fw_cfg_args(const VmSpec& spec, const VmPaths& p) {
  const std::string& cert = spec.tls_cert.empty() ? p.tls_cert : spec.tls_cert;
  const std::string& key = spec.tls_key.empty() ? p.tls_key : spec.tls_key;
  return {"-fw_cfg", "name=opt/appvirt/config,file=" + p.guest_config,
          "-fw_cfg", "name=opt/appvirt/secret,file=" + p.secret,
          "-fw_cfg", "name=opt/appvirt/tls.crt,file=" + cert,
          "-fw_cfg", "name=opt/appvirt/tls.key,file=" + key};
}

}  // namespace

std::vector<std::string> qemu_command(const VmSpec& spec, const VmPaths& paths) {
  std::vector<std::string> argv = {spec.qemu,     "-name",           "appvirt-" + spec.session_id,
                                   "-nodefaults", "-no-user-config", "-display",
                                   "none",        "-no-reboot"};
  for (auto part : {machine_args(spec), boot_args(spec, paths), net_args(spec), channel_args(paths),
                    fw_cfg_args(spec, paths)}) {
    argv.insert(argv.end(), part.begin(), part.end());
  }
  // QEMU's own seccomp filter: no exec, no setuid, no obsolete calls once the guest runs.
  argv.insert(argv.end(), {"-sandbox",
                           "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
                           "resourcecontrol=deny"});
  if (spec.run_as) argv.insert(argv.end(), {"-runas", *spec.run_as});
  return argv;
}

std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string guest_config_text(const VmSpec& spec) {
  std::string argv;
  for (const auto& w : spec.argv) argv += (argv.empty() ? "" : " ") + shell_quote(w);
  return "user=" + spec.user + "\nuid=" + std::to_string(spec.uid) +
         "\ngid=" + std::to_string(spec.gid) + "\nwidth=" + std::to_string(spec.width) +
         "\nheight=" + std::to_string(spec.height) + "\nip=" + kGuestIp + "/24\nargv=" + argv +
         "\n";
}

}  // namespace appvirt::vm
