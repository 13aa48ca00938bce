#include "session-host/sandbox/cgroup.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

namespace appvirt::sandbox {

Result<std::unique_ptr<CgroupDriver>> CgroupDriver::detect(Sys& sys, std::string root) {
  if (sys.exists(root + "/cgroup.controllers")) return make_cgroup_v2(sys, std::move(root));
  for (const std::string& c : cgroup_v1_controllers()) {
    if (c == "cpuacct") continue;  // optional: only used for cpu_usage_usec
    if (!sys.exists(root + "/" + c + "/cgroup.procs")) {
      return fail("cgroup detect: neither " + root + "/cgroup.controllers (v2) nor the v1 " + c +
                      " hierarchy at " + root + "/" + c,
                  ENOENT);
    }
  }
  return make_cgroup_v1(sys, std::move(root));
}

Result<> validate_cgroup_path(std::string_view path) {
  if (path.empty()) return fail("cgroup path is empty", EINVAL);
  if (path.front() == '/' || path.back() == '/') {
    return fail("cgroup path \"" + std::string(path) + "\" must be relative, without trailing /",
                EINVAL);
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    bool safe =
        !part.empty() && part != "." && part != ".." &&
        std::all_of(part.begin(), part.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        });
    if (!safe) {
      return fail("cgroup path \"" + std::string(path) + "\" has a bad component \"" +
                      std::string(part) + "\"",
                  EINVAL);
    }
    start = end + 1;
  }
  return {};
}

uint64_t cpu_weight_to_shares(uint32_t weight) {
  uint64_t shares = static_cast<uint64_t>(weight) * 1024 / 100;
  return std::clamp<uint64_t>(shares, 2, 262144);
}

namespace cgroup_detail {

Result<uint64_t> read_u64(Sys& sys, const std::string& file) {
  auto text = sys.read_file(file);
  if (!text) return tl::unexpected(text.error());
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc()) return fail("parse number in " + file + ": \"" + *text + "\"", EINVAL);
  return value;
}

Result<uint64_t> read_keyed(Sys& sys, const std::string& file, std::string_view key) {
  auto text = sys.read_file(file);
  if (!text) return tl::unexpected(text.error());
  std::istringstream in(*text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return fail("no key " + std::string(key) + " in " + file, ENOENT);
}

Result<std::vector<pid_t>> read_pids(Sys& sys, const std::string& file) {
  auto text = sys.read_file(file);
  if (!text) return tl::unexpected(text.error());
  std::vector<pid_t> out;
  std::istringstream in(*text);
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

Result<std::vector<std::string>> subtree_bottom_up(Sys& sys, const std::string& dir) {
  auto children = sys.list_subdirs(dir);
  if (!children) return tl::unexpected(children.error());
  std::vector<std::string> out;
  for (const std::string& c : *children) {
    auto sub = subtree_bottom_up(sys, dir + "/" + c);
    if (!sub) return sub;
    out.insert(out.end(), sub->begin(), sub->end());
  }
  out.push_back(dir);
  return out;
}

}  // namespace cgroup_detail
}  // namespace appvirt::sandbox
