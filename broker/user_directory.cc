#include "broker/user_directory.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

namespace appvirt::broker {

namespace {

// Buffers for the *_r calls: start at the size sysconf suggests, grow on ERANGE.
template <class Call>
int with_buffer(long hint, Call call) {
  std::size_t size = hint > 0 ? static_cast<std::size_t>(hint) : 4096;
  for (int attempt = 0; attempt < 8; ++attempt, size *= 2) {
    std::vector<char> buf(size);
    int rc = call(buf.data(), buf.size());
    if (rc != ERANGE) return rc;
  }
  return ERANGE;
}

Result<std::string> group_name(gid_t gid) {
  std::string name;
  int rc = with_buffer(::sysconf(_SC_GETGR_R_SIZE_MAX), [&](char* buf, std::size_t n) {
    group gr{};
    group* found = nullptr;
    int r = ::getgrgid_r(gid, &gr, buf, n, &found);
    if (r == 0 && found) name = found->gr_name;
    return r;
  });
  if (rc != 0) return fail("getgrgid_r(" + std::to_string(gid) + ")", rc);
  if (name.empty()) name = std::to_string(gid);  // a gid without a name still counts as itself
  return name;
}

}  // namespace

Result<std::vector<std::string>> NssUserDirectory::groups_of(const std::string& user) {
  gid_t primary = 0;
  bool found_user = false;
  int rc = with_buffer(::sysconf(_SC_GETPW_R_SIZE_MAX), [&](char* buf, std::size_t n) {
    passwd pw{};
    passwd* found = nullptr;
    int r = ::getpwnam_r(user.c_str(), &pw, buf, n, &found);
    if (r == 0 && found) {
      primary = found->pw_gid;
      found_user = true;
    }
    return r;
  });
  if (rc != 0) return fail("getpwnam_r(" + user + ")", rc);
  if (!found_user) return fail("getpwnam_r(" + user + "): no such user");
  std::vector<gid_t> gids(64);
  int count = static_cast<int>(gids.size());
  while (::getgrouplist(user.c_str(), primary, gids.data(), &count) < 0) {
    if (count <= static_cast<int>(gids.size()) || count > 65536) {
      return fail("getgrouplist(" + user + ")");
    }
    gids.resize(static_cast<std::size_t>(count));
  }
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    auto name = group_name(gids[static_cast<std::size_t>(i)]);
    if (!name) return tl::unexpected(name.error());
    out.push_back(std::move(*name));
  }
  return out;
}

}  // namespace appvirt::broker
