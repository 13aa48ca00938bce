#pragma once
// Store on one SQLite file in WAL mode (readers never block the writer; a crash loses at most the
// last transactions, never the file). The file holds session secrets: it is created 0600.
#include <string>

#include "broker/sqlite.h"
#include "broker/store.h"

namespace appvirt::broker {

class SqliteStore final : public Store {
 public:
  // Opens or creates the database and brings its schema to the current version.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path);

  Result<void> put_session(const SessionRecord& s) override;
  Result<std::optional<SessionRecord>> get_session(const std::string& id) override;
  Result<std::vector<SessionRecord>> list_sessions(const std::string& user,
                                                   bool include_ended) override;
  Result<std::optional<SessionRecord>> find_live_session(const std::string& user,
                                                         const std::string& app_id) override;
  Result<void> end_session(const std::string& id, const std::string& reason, int64_t at) override;

  Result<void> put_host(const HostRecord& h) override;
  Result<std::vector<HostRecord>> list_hosts() override;

  Result<void> put_token(const TokenRecord& t) override;
  Result<TokenRedemption> redeem_token(const std::string& hash, int64_t now) override;
  Result<int> purge_tokens(int64_t before) override;

  Result<void> audit(const AuditEvent& e) override;
  Result<std::vector<AuditEvent>> recent_audit(int limit) override;

  // In policy_store_sqlite.cc.
  Result<PolicyVersion> add_policy_version(const PolicyVersion& v) override;
  Result<std::optional<PolicyVersion>> policy_version(int64_t version) override;
  Result<std::optional<PolicyVersion>> latest_policy_version() override;
  Result<std::optional<PolicyVersion>> latest_file_import() override;
  Result<std::vector<PolicyVersion>> policy_history(int limit) override;

 private:
  explicit SqliteStore(sqlite::Db db) : db_(std::move(db)) {}
  Result<void> migrate();
  Result<std::vector<SessionRecord>> query_sessions(std::string_view sql, const std::string& a,
                                                    const std::string& b);

  sqlite::Db db_;
};

}  // namespace appvirt::broker
