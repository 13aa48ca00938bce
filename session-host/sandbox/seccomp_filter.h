#pragma once
// The seccomp filter every process in a container runs under (init and everything exec'd).
// Default allow; a deny list of calls an unprivileged desktop application never needs and that
// are the usual kernel attack surface or a way out of the namespaces. Loaded last, after
// no_new_privs, so nothing after it needs a denied call.
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::sandbox {

struct SeccompDenial {
  std::string syscall;
  int errno_value;      // returned instead of running the call
  std::string comment;  // why, for docs/sandbox.md and the PFC dump
};

// Whole-syscall denials (without the argument-filtered ones: clone with namespace flags,
// ioctl TIOCSTI/TIOCLINUX, which install_seccomp_filter adds too).
const std::vector<SeccompDenial>& seccomp_denials();

// Builds the filter and loads it into the calling thread (the helper is single threaded).
Result<> install_seccomp_filter();

// The filter in libseccomp's human-readable PFC form, without loading it (tests, docs).
Result<std::string> seccomp_filter_pfc();

}  // namespace appvirt::sandbox
