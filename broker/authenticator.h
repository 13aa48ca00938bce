#pragma once
// The seam between the broker and whatever checks passwords: PAM in the daemon, a fake in unit
// tests. Implementations block (PAM stacks sleep on failure, talk to LDAP...), so the broker
// calls them from its auth thread pool, never from the I/O thread.
#include <string>

namespace appvirt::broker {

struct AuthResult {
  enum class Status { ok, denied, error };
  Status status = Status::denied;
  std::string user;    // the canonical user name (PAM may map the name that was typed)
  std::string reason;  // for the log: never contains the password
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // Checks the password and that the account may log in now. address is the client's, for the
  // PAM stack (PAM_RHOST). Must be safe to call from several threads at once.
  virtual AuthResult authenticate(const std::string& user, const std::string& password,
                                  const std::string& address) = 0;
};

// PAM through one service name (/etc/pam.d/<service>): pam_authenticate, then pam_acct_mgmt.
class PamAuthenticator final : public Authenticator {
 public:
  explicit PamAuthenticator(std::string service) : service_(std::move(service)) {}
  AuthResult authenticate(const std::string& user, const std::string& password,
                          const std::string& address) override;

 private:
  std::string service_;
};

}  // namespace appvirt::broker
