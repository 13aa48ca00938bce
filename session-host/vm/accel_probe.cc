#include "session-host/vm/accel_probe.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "session-host/vm/vm_process.h"

namespace appvirt::vm {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::vector<std::string> probe_command(const std::string& qemu, const VmImage& image,
                                       const std::string& console_log) {
  return {qemu,
          "-machine",
          "q35",
          "-accel",
          "kvm",
          "-cpu",
          "host",
          "-m",
          "256M",
          "-nodefaults",
          "-no-user-config",
          "-display",
          "none",
          "-no-reboot",
          "-serial",
          "file:" + console_log,
          "-kernel",
          image.kernel,
          "-initrd",
          image.initrd,
          "-append",
          "console=ttyS0 quiet no_timer_check panic=-1 appvirt.probe=1"};
}

namespace {

bool file_contains(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.find(needle) != std::string::npos;
}

}  // namespace

ProbeResult probe_accelerator(const std::string& qemu, const VmImage& image,
                              const std::string& work_dir, milliseconds timeout) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) return {Accel::kTcg, "no usable /dev/kvm"};
  const std::string log = work_dir + "/kvm-probe.console";
  ::unlink(log.c_str());
  auto start = steady_clock::now();
  auto pid = spawn_detached(probe_command(qemu, image, log), work_dir + "/kvm-probe.qemu.log");
  if (!pid) return {Accel::kTcg, "probe did not start: " + pid.error().str()};
  auto pidfd = open_pidfd(*pid);
  bool exited = pidfd && wait_pidfd_exit(pidfd->get(), *pid, timeout);
  if (!exited) {
    ::kill(*pid, SIGKILL);
    if (pidfd) wait_pidfd_exit(pidfd->get(), *pid, milliseconds(5000));
  }
  auto ms = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start).count();
  if (exited && file_contains(log, "APPVIRT-PROBE-OK")) {
    return {Accel::kKvm, "kvm guest booted in " + std::to_string(ms) + " ms"};
  }
  return {Accel::kTcg, exited ? "kvm guest exited without the marker"
                              : "kvm guest hung (no marker in " + std::to_string(ms) + " ms)"};
}

}  // namespace appvirt::vm
