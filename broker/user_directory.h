#pragma once
// Group membership of users (entitlement, admin rights). NSS lookups may reach LDAP/SSSD and
// block, so the broker resolves groups once at login, on its auth thread pool, and keeps them
// with the browser session.
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::broker {

class UserDirectory {
 public:
  virtual ~UserDirectory() = default;
  // Names of every group user belongs to (primary group first). Thread safe.
  virtual Result<std::vector<std::string>> groups_of(const std::string& user) = 0;
};

// getpwnam_r + getgrouplist + getgrgid_r.
class NssUserDirectory final : public UserDirectory {
 public:
  Result<std::vector<std::string>> groups_of(const std::string& user) override;
};

}  // namespace appvirt::broker
