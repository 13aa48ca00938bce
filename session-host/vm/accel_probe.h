#pragma once
// Chooses QEMU's accelerator. /dev/kvm existing is not enough: on the build machines it is
// served by a nested PVM host where ordinary guests hang. So a short probe boots the image's
// kernel + initramfs under KVM with appvirt.probe=1 (the initramfs prints a marker and powers
// off); only when that marker arrives in time is KVM used.
#include <chrono>
#include <string>

#include "session-host/vm/vm_spec.h"

namespace appvirt::vm {

struct ProbeResult {
  Accel accel = Accel::kTcg;
  std::string reason;  // why: "no /dev/kvm", "kvm guest booted in 812 ms", "kvm guest hung"...
};

std::vector<std::string> probe_command(const std::string& qemu, const VmImage& image,
                                       const std::string& console_log);

// Runs the probe (bounded by timeout, killed after it); work_dir holds its console log.
ProbeResult probe_accelerator(const std::string& qemu, const VmImage& image,
                              const std::string& work_dir, std::chrono::milliseconds timeout);

}  // namespace appvirt::vm
