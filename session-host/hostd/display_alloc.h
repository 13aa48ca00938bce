#pragma once
// Display numbers are unique on the host: hostd hands out each number once among its sessions
// and skips numbers another X server on the host already uses.
#include <functional>
#include <optional>
#include <set>

namespace appvirt::hostd {

// Display numbers in use on the host outside hostd: /tmp/.X11-unix/X<n>, /tmp/.X<n>-lock and
// abstract sockets "@/tmp/.X11-unix/X<n>" in /proc/net/unix (hostd's network namespace).
std::set<int> host_displays_in_use();

class DisplayAllocator {
 public:
  using HostProbe = std::function<std::set<int>()>;
  DisplayAllocator(int first, int last, HostProbe probe = host_displays_in_use)
      : first_(first), last_(last), probe_(std::move(probe)) {}

  // The lowest number in range that is neither ours nor used on the host.
  std::optional<int> allocate();
  // Marks n as ours (re-adopted sessions); false when it already was.
  bool reserve(int n);
  void release(int n) { used_.erase(n); }
  bool in_use(int n) const { return used_.count(n) > 0; }

 private:
  int first_, last_;
  HostProbe probe_;
  std::set<int> used_;
};

}  // namespace appvirt::hostd
