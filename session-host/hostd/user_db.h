#pragma once
// Seam over the passwd/group databases (getpwnam_r, getgrouplist) so the session manager can be
// tested with users that do not exist on the build machine.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::hostd {

struct UserInfo {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups including the primary one
  std::string home;
};

class UserDb {
 public:
  virtual ~UserDb() = default;
  // Fails with ENOENT when there is no such user.
  virtual Result<UserInfo> lookup(const std::string& name) = 0;
};

class SystemUserDb : public UserDb {
 public:
  Result<UserInfo> lookup(const std::string& name) override;
};

// Names hostd accepts before asking any database: what useradd allows, without path tricks.
bool valid_user_name(const std::string& name);

}  // namespace appvirt::hostd
