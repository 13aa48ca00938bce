#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <openssl/crypto.h>

#include "broker/authenticator.h"

namespace appvirt::broker {

namespace {

// The conversation answers every hidden prompt with the password and every visible one (a user
// name prompt) with the user; info/error messages need no answer. It runs inside the C library
// and must not throw; allocation failures are reported as PAM_BUF_ERR.
struct ConvData {
  const std::string* user;
  const std::string* password;
};

int conversation(int n, const struct pam_message** msgs, struct pam_response** out, void* data) {
  if (n <= 0 || n > PAM_MAX_NUM_MSG) return PAM_CONV_ERR;
  auto* d = static_cast<ConvData*>(data);
  auto* replies = static_cast<pam_response*>(std::calloc(static_cast<size_t>(n), sizeof(pam_response)));
  if (!replies) return PAM_BUF_ERR;
  for (int i = 0; i < n; ++i) {
    const char* answer = nullptr;
    switch (msgs[i]->msg_style) {
      case PAM_PROMPT_ECHO_OFF: answer = d->password->c_str(); break;
      case PAM_PROMPT_ECHO_ON: answer = d->user->c_str(); break;
      case PAM_ERROR_MSG:
      case PAM_TEXT_INFO: continue;
      default: answer = nullptr;
    }
    if (!answer) {
      for (int j = 0; j < i; ++j) {
        if (replies[j].resp) {
          OPENSSL_cleanse(replies[j].resp, std::strlen(replies[j].resp));
          std::free(replies[j].resp);
        }
      }
      std::free(replies);
      return PAM_CONV_ERR;
    }
    replies[i].resp = ::strdup(answer);
    if (!replies[i].resp) {
      std::free(replies);
      return PAM_BUF_ERR;
    }
  }
  *out = replies;
  return PAM_SUCCESS;
}

// Owns a pam_handle_t; pam_end gets the status of the last call, as PAM requires.
class PamHandle {
 public:
  PamHandle(const std::string& service, const std::string& user, pam_conv* conv) {
    status_ = pam_start(service.c_str(), user.c_str(), conv, &handle_);
  }
  ~PamHandle() {
    if (handle_) pam_end(handle_, status_);
  }
  PamHandle(const PamHandle&) = delete;
  PamHandle& operator=(const PamHandle&) = delete;
  pam_handle_t* get() const { return handle_; }
  int status() const { return status_; }
  int record(int status) { return status_ = status; }

 private:
  pam_handle_t* handle_ = nullptr;
  int status_ = PAM_SUCCESS;
};

AuthResult result(AuthResult::Status s, std::string user, std::string reason) {
  return AuthResult{s, std::move(user), std::move(reason)};
}

}  // namespace

AuthResult PamAuthenticator::authenticate(const std::string& user, const std::string& password,
                                          const std::string& address) {
  using S = AuthResult::Status;
  ConvData data{&user, &password};
  pam_conv conv{conversation, &data};
  PamHandle pam(service_, user, &conv);
  if (!pam.get() || pam.status() != PAM_SUCCESS) {
    return result(S::error, user, "pam_start(" + service_ + ") failed");
  }
  pam_set_item(pam.get(), PAM_RHOST, address.c_str());
  pam_set_item(pam.get(), PAM_RUSER, "appvirt-broker");
  int rc = pam.record(pam_authenticate(pam.get(), PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK));
  if (rc != PAM_SUCCESS) {
    // PAM_AUTHINFO_UNAVAIL (directory down) and the like are errors, not bad passwords: they
    // answer 503 and do not count toward a lockout.
    S s = (rc == PAM_AUTH_ERR || rc == PAM_USER_UNKNOWN || rc == PAM_MAXTRIES ||
           rc == PAM_CRED_INSUFFICIENT) ? S::denied : S::error;
    return result(s, user, std::string("pam_authenticate: ") + pam_strerror(pam.get(), rc));
  }
  rc = pam.record(pam_acct_mgmt(pam.get(), PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK));
  if (rc != PAM_SUCCESS) {
    return result(S::denied, user, std::string("pam_acct_mgmt: ") + pam_strerror(pam.get(), rc));
  }
  const void* item = nullptr;
  std::string canonical = user;
  if (pam_get_item(pam.get(), PAM_USER, &item) == PAM_SUCCESS && item) {
    canonical = static_cast<const char*>(item);
  }
  return result(S::ok, canonical, "");
}

}  // namespace appvirt::broker
