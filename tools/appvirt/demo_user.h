#pragma once
// The demo user of `appvirt up`: created with useradd + chpasswd when missing (an existing user
// and its password are left alone), and the test-pattern app copied into its home, since a
// container sees /usr and the user's home but not the install prefix.
#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace appvirt::up {

struct DemoUser {
  std::string name, home;
  uid_t uid = 0;
  gid_t gid = 0;
  bool created = false;  // by this run
};

Result<DemoUser> ensure_demo_user(const std::string& name, const std::string& password);

// Copies `source` to <dir>/appvirt-testpattern (0755), working as the user so that nothing in
// the user's home (a symlink, say) can make root write elsewhere.
Result<void> install_demo_app(const DemoUser& user, const std::string& source,
                              const std::string& dir);

}  // namespace appvirt::up
