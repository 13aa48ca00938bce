// The policy_versions table of SqliteStore (schema in sqlite_store.cc). Kept apart from the
// session directory code: versions are append-only and read by number or newest first.
#include "broker/sqlite_store.h"

namespace appvirt::broker {

namespace {

using sqlite::Statement;

constexpr const char* kColumns = "version, author, created_at, comment, policy_json, file_sha256";

PolicyVersion version_from_row(const Statement& st) {
  return PolicyVersion{st.int64(0), st.text(1), st.int64(2), st.text(3), st.text(4), st.text(5)};
}

// Runs a SELECT of kColumns and returns its first row, if any.
Result<std::optional<PolicyVersion>> first_version(sqlite3* db, const std::string& where,
                                                   std::optional<int64_t> param) {
  auto st = Statement::prepare(db, std::string("SELECT ") + kColumns +
                                       " FROM policy_versions " + where);
  if (!st) return tl::unexpected(st.error());
  if (param) st->bind(1, *param);
  auto row = st->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return std::optional<PolicyVersion>();
  return std::optional<PolicyVersion>(version_from_row(*st));
}

}  // namespace

Result<PolicyVersion> SqliteStore::add_policy_version(const PolicyVersion& v) {
  // The number is taken inside the INSERT, so two writers on one database cannot both get it
  // (the second fails on the primary key instead of silently sharing a number).
  auto st = Statement::prepare(db_.get(),
                               "INSERT INTO policy_versions (version, author, created_at, comment, "
                               "policy_json, file_sha256) SELECT COALESCE(MAX(version), 0) + 1, "
                               "?1, ?2, ?3, ?4, ?5 FROM policy_versions RETURNING version");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, v.author).bind(2, v.created_at).bind(3, v.comment).bind(4, v.policy_json);
  st->bind(5, v.file_sha256);
  auto row = st->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return fail("INSERT INTO policy_versions: no version returned");
  PolicyVersion out = v;
  out.version = st->int64(0);
  if (auto done = st->run(); !done) return tl::unexpected(done.error());
  return out;
}

Result<std::optional<PolicyVersion>> SqliteStore::policy_version(int64_t version) {
  return first_version(db_.get(), "WHERE version = ?1", version);
}

Result<std::optional<PolicyVersion>> SqliteStore::latest_policy_version() {
  return first_version(db_.get(), "ORDER BY version DESC LIMIT 1", std::nullopt);
}

Result<std::optional<PolicyVersion>> SqliteStore::latest_file_import() {
  return first_version(db_.get(), "WHERE file_sha256 != '' ORDER BY version DESC LIMIT 1",
                       std::nullopt);
}

Result<std::vector<PolicyVersion>> SqliteStore::policy_history(int limit) {
  auto st = Statement::prepare(db_.get(),
                               "SELECT version, author, created_at, comment, '', file_sha256 "
                               "FROM policy_versions ORDER BY version DESC LIMIT ?");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, int64_t{limit});
  std::vector<PolicyVersion> out;
  for (;;) {
    auto row = st->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out.push_back(version_from_row(*st));
  }
  return out;
}

}  // namespace appvirt::broker
