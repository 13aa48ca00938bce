#pragma once
// The broker's durable state behind one interface: the session directory, the host registry,
// launch tokens (hashed) and the audit log. SQLite implements it for one broker; PostgreSQL will
// implement the same interface when several brokers share a site. Times are milliseconds since
// the Unix epoch. Calls are synchronous and short; the broker makes them from its I/O thread.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace appvirt::broker {

struct SessionRecord {
  std::string id;  // hostd's session id
  std::string user;
  std::string app_id;
  std::string host;
  std::string state = "starting";  // starting | running | ended
  std::string end_reason;          // empty while not ended
  std::string endpoint_unix;
  std::string endpoint_tcp;        // "127.0.0.1:port" or empty
  std::string secret;              // the endpoint's cookie secret; empty when unknown (adopted)
  std::string display;
  int64_t created_at = 0;
  int64_t ended_at = 0;  // 0 while not ended

  bool live() const { return state != "ended"; }
};

struct HostRecord {
  std::string name;
  std::string socket;       // hostd control socket (same machine); empty for remote hosts
  int capacity = 0;
  bool configured = false;  // from broker.toml (true) or registered over the internal API
  std::string isolation = "container";  // what it can run: "container", "vm" or "container,vm"
  int64_t last_seen = 0;    // last successful report or health probe
  std::string load_json = "{}";  // last load report, verbatim (validated) JSON
};

struct TokenRecord {
  std::string hash;  // sha256_hex of the token
  std::string session_id;
  std::string user;
  int64_t expires_at = 0;
};

enum class TokenStatus { ok, unknown, used, expired };

struct TokenRedemption {
  TokenStatus status = TokenStatus::unknown;
  TokenRecord token;  // filled when status is ok
};

struct AuditEvent {
  int64_t id = 0;  // assigned by the store
  int64_t at = 0;
  std::string event;  // login, login_failed, login_locked, logout, launch, reconnect, logoff, ...
  std::string user;
  std::string source;  // client address, "gateway", "admin:<name>", ...
  std::string detail;
};

// One version of the policy in force (docs/policies.md "Versions"). Versions are never changed
// or deleted: a rollback adds a new version with an old version's content.
struct PolicyVersion {
  int64_t version = 0;  // 1, 2, ... assigned by the store
  std::string author;   // "admin:<name>", "file:<path>" or "builtin"
  int64_t created_at = 0;
  std::string comment;
  std::string policy_json;  // the canonical JSON form (policies::policy_set_to_json)
  std::string file_sha256;  // for imports of policy_file: SHA-256 of the file's bytes; else empty
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts or replaces a session by id.
  virtual Result<void> put_session(const SessionRecord& s) = 0;
  virtual Result<std::optional<SessionRecord>> get_session(const std::string& id) = 0;
  // All sessions (user empty) or one user's; ended ones only when include_ended.
  virtual Result<std::vector<SessionRecord>> list_sessions(const std::string& user,
                                                           bool include_ended) = 0;
  // The newest live session of user running app_id, if any.
  virtual Result<std::optional<SessionRecord>> find_live_session(const std::string& user,
                                                                 const std::string& app_id) = 0;
  virtual Result<void> end_session(const std::string& id, const std::string& reason,
                                   int64_t at) = 0;

  virtual Result<void> put_host(const HostRecord& h) = 0;
  virtual Result<std::vector<HostRecord>> list_hosts() = 0;

  virtual Result<void> put_token(const TokenRecord& t) = 0;
  // Marks the token used, atomically, if it exists, is unused and has not expired at `now`.
  virtual Result<TokenRedemption> redeem_token(const std::string& hash, int64_t now) = 0;
  // Deletes tokens that expired before `before`; returns how many.
  virtual Result<int> purge_tokens(int64_t before) = 0;

  virtual Result<void> audit(const AuditEvent& e) = 0;
  // Newest first.
  virtual Result<std::vector<AuditEvent>> recent_audit(int limit) = 0;

  // Policy versions (policy_store_sqlite.cc). add_policy_version assigns the next number and
  // returns the stored row; listing is newest first, without policy_json.
  virtual Result<PolicyVersion> add_policy_version(const PolicyVersion& v) = 0;
  virtual Result<std::optional<PolicyVersion>> policy_version(int64_t version) = 0;
  virtual Result<std::optional<PolicyVersion>> latest_policy_version() = 0;
  // The newest version imported from a policy file (file_sha256 set), if any.
  virtual Result<std::optional<PolicyVersion>> latest_file_import() = 0;
  virtual Result<std::vector<PolicyVersion>> policy_history(int limit) = 0;
};

}  // namespace appvirt::broker
