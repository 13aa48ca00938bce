#include "session-host/hostd/display_alloc.h"

#include <filesystem>
#include <fstream>
#include <string>

namespace appvirt::hostd {

namespace {

// "X123" → 123 after prefix; nullopt for anything else.
std::optional<int> number_after(const std::string& s, const std::string& prefix,
                                const std::string& suffix = "") {
  if (s.size() <= prefix.size() + suffix.size() || s.rfind(prefix, 0) != 0) return std::nullopt;
  if (!suffix.empty() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  std::string digits = s.substr(prefix.size(), s.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 6) return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return std::stoi(digits);
}

}  // namespace

std::set<int> host_displays_in_use() {
  std::set<int> used;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/tmp/.X11-unix", ec)) {
    if (auto n = number_after(e.path().filename().string(), "X")) used.insert(*n);
  }
  for (const auto& e : std::filesystem::directory_iterator("/tmp", ec)) {
    if (auto n = number_after(e.path().filename().string(), ".X", "-lock")) used.insert(*n);
  }
  std::ifstream unix_sockets("/proc/net/unix");
  std::string line;
  while (std::getline(unix_sockets, line)) {
    auto at = line.rfind(' ');
    if (at == std::string::npos) continue;
    if (auto n = number_after(line.substr(at + 1), "@/tmp/.X11-unix/X")) used.insert(*n);
  }
  return used;
}

std::optional<int> DisplayAllocator::allocate() {
  std::set<int> host = probe_ ? probe_() : std::set<int>{};
  for (int n = first_; n <= last_; ++n) {
    if (used_.count(n) || host.count(n)) continue;
    used_.insert(n);
    return n;
  }
  return std::nullopt;
}

bool DisplayAllocator::reserve(int n) { return used_.insert(n).second; }

}  // namespace appvirt::hostd
