#include "broker/sqlite_store.h"

#include <sys/stat.h>

namespace appvirt::broker {

namespace {

using sqlite::Statement;

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  user TEXT NOT NULL,
  app_id TEXT NOT NULL,
  host TEXT NOT NULL,
  state TEXT NOT NULL,
  end_reason TEXT NOT NULL DEFAULT '',
  endpoint_unix TEXT NOT NULL DEFAULT '',
  endpoint_tcp TEXT NOT NULL DEFAULT '',
  secret TEXT NOT NULL DEFAULT '',
  display TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  ended_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_user_app ON sessions(user, app_id, state);
CREATE TABLE IF NOT EXISTS hosts (
  name TEXT PRIMARY KEY,
  socket TEXT NOT NULL DEFAULT '',
  capacity INTEGER NOT NULL,
  configured INTEGER NOT NULL,
  isolation TEXT NOT NULL DEFAULT 'container',
  last_seen INTEGER NOT NULL DEFAULT 0,
  load_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS tokens (
  hash TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  user TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  event TEXT NOT NULL,
  user TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS policy_versions (
  version INTEGER PRIMARY KEY,
  author TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  policy_json TEXT NOT NULL,
  file_sha256 TEXT NOT NULL DEFAULT ''
);
)sql";

constexpr const char* kSessionColumns =
    "id, user, app_id, host, state, end_reason, endpoint_unix, endpoint_tcp, secret, display, "
    "created_at, ended_at";

SessionRecord session_from_row(const Statement& st) {
  SessionRecord s;
  s.id = st.text(0);
  s.user = st.text(1);
  s.app_id = st.text(2);
  s.host = st.text(3);
  s.state = st.text(4);
  s.end_reason = st.text(5);
  s.endpoint_unix = st.text(6);
  s.endpoint_tcp = st.text(7);
  s.secret = st.text(8);
  s.display = st.text(9);
  s.created_at = st.int64(10);
  s.ended_at = st.int64(11);
  return s;
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  // The file holds session secrets: no group/other access, even for the moment before chmod.
  mode_t old = ::umask(0077);
  auto db = sqlite::open(path);
  ::umask(old);
  if (!db) return tl::unexpected(db.error());
  ::chmod(path.c_str(), 0600);
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(*db)));
  if (auto r = store->migrate(); !r) return tl::unexpected(wrap("database " + path, r.error()));
  return store;
}

namespace {

// Runs a pragma that answers one row and returns that row's first column as text. The statement
// is finalized before returning: an open statement would block the schema transaction's COMMIT.
Result<std::string> pragma_value(sqlite3* db, const char* sql) {
  auto st = Statement::prepare(db, sql);
  if (!st) return tl::unexpected(st.error());
  auto row = st->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return fail(std::string(sql) + ": no result");
  return st->text(0);
}

}  // namespace

Result<void> SqliteStore::migrate() {
  sqlite3* db = db_.get();
  if (auto r = sqlite::exec(db, "PRAGMA busy_timeout=5000"); !r) return r;
  auto mode = pragma_value(db, "PRAGMA journal_mode=WAL");
  if (!mode) return tl::unexpected(mode.error());
  if (*mode != "wal") return fail("PRAGMA journal_mode=WAL: still in " + *mode + " mode");
  if (auto r = sqlite::exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON"); !r) return r;
  auto version = pragma_value(db, "PRAGMA user_version");
  if (!version) return tl::unexpected(version.error());
  int64_t have = std::stoll(*version);
  if (have > kSchemaVersion) {
    return fail("schema version " + std::to_string(have) + " is newer than this broker's (" +
                std::to_string(kSchemaVersion) + ")");
  }
  std::string sql = std::string("BEGIN;") + kSchema + "PRAGMA user_version=" +
                    std::to_string(kSchemaVersion) + ";COMMIT;";
  if (auto r = sqlite::exec(db, sql); !r) {
    (void)sqlite::exec(db, "ROLLBACK");
    return r;
  }
  return {};
}

Result<void> SqliteStore::put_session(const SessionRecord& s) {
  auto st = Statement::prepare(db_.get(), std::string("INSERT OR REPLACE INTO sessions (") +
                                              kSessionColumns +
                                              ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, s.id).bind(2, s.user).bind(3, s.app_id).bind(4, s.host).bind(5, s.state);
  st->bind(6, s.end_reason).bind(7, s.endpoint_unix).bind(8, s.endpoint_tcp).bind(9, s.secret);
  st->bind(10, s.display).bind(11, s.created_at).bind(12, s.ended_at);
  return st->run();
}

Result<std::vector<SessionRecord>> SqliteStore::query_sessions(std::string_view sql,
                                                               const std::string& a,
                                                               const std::string& b) {
  auto st = Statement::prepare(db_.get(), sql);
  if (!st) return tl::unexpected(st.error());
  if (!a.empty()) st->bind(1, a);
  if (!b.empty()) st->bind(2, b);
  std::vector<SessionRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out.push_back(session_from_row(*st));
  }
  return out;
}

Result<std::optional<SessionRecord>> SqliteStore::get_session(const std::string& id) {
  auto rows = query_sessions(std::string("SELECT ") + kSessionColumns +
                                 " FROM sessions WHERE id = ?",
                             id, "");
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(std::move(rows->front()));
}

Result<std::vector<SessionRecord>> SqliteStore::list_sessions(const std::string& user,
                                                              bool include_ended) {
  std::string sql = std::string("SELECT ") + kSessionColumns + " FROM sessions WHERE 1";
  if (!user.empty()) sql += " AND user = ?1";
  if (!include_ended) sql += " AND state != 'ended'";
  sql += " ORDER BY created_at, id";
  return query_sessions(sql, user, "");
}

Result<std::optional<SessionRecord>> SqliteStore::find_live_session(const std::string& user,
                                                                    const std::string& app_id) {
  auto rows = query_sessions(std::string("SELECT ") + kSessionColumns +
                                 " FROM sessions WHERE user = ?1 AND app_id = ?2 AND "
                                 "state != 'ended' ORDER BY created_at DESC LIMIT 1",
                             user, app_id);
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(std::move(rows->front()));
}

Result<void> SqliteStore::end_session(const std::string& id, const std::string& reason,
                                      int64_t at) {
  auto st = Statement::prepare(db_.get(),
                               "UPDATE sessions SET state = 'ended', end_reason = ?2, ended_at = ?3 "
                               "WHERE id = ?1 AND state != 'ended'");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, id).bind(2, reason).bind(3, at);
  return st->run();
}

Result<void> SqliteStore::put_host(const HostRecord& h) {
  auto st = Statement::prepare(db_.get(),
                               "INSERT OR REPLACE INTO hosts (name, socket, capacity, configured, "
                               "isolation, last_seen, load_json) VALUES (?,?,?,?,?,?,?)");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, h.name).bind(2, h.socket).bind(3, int64_t{h.capacity});
  st->bind(4, int64_t{h.configured ? 1 : 0}).bind(5, h.isolation).bind(6, h.last_seen);
  st->bind(7, h.load_json);
  return st->run();
}

Result<std::vector<HostRecord>> SqliteStore::list_hosts() {
  auto st = Statement::prepare(db_.get(),
                               "SELECT name, socket, capacity, configured, isolation, last_seen, "
                               "load_json FROM hosts ORDER BY name");
  if (!st) return tl::unexpected(st.error());
  std::vector<HostRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    HostRecord h;
    h.name = st->text(0);
    h.socket = st->text(1);
    h.capacity = static_cast<int>(st->int64(2));
    h.configured = st->int64(3) != 0;
    h.isolation = st->text(4);
    h.last_seen = st->int64(5);
    h.load_json = st->text(6);
    out.push_back(std::move(h));
  }
  return out;
}

Result<void> SqliteStore::put_token(const TokenRecord& t) {
  auto st = Statement::prepare(db_.get(),
                               "INSERT INTO tokens (hash, session_id, user, expires_at) "
                               "VALUES (?,?,?,?)");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, t.hash).bind(2, t.session_id).bind(3, t.user).bind(4, t.expires_at);
  return st->run();
}

Result<TokenRedemption> SqliteStore::redeem_token(const std::string& hash, int64_t now) {
  // One statement marks and returns the token, so two redeemers cannot both win (this also
  // holds for a shared PostgreSQL with UPDATE ... RETURNING).
  auto st = Statement::prepare(db_.get(),
                               "UPDATE tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL "
                               "AND expires_at > ?2 RETURNING session_id, user, expires_at");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, hash).bind(2, now);
  auto row = st->step();
  if (!row) return tl::unexpected(row.error());
  TokenRedemption out;
  if (*row) {
    out.status = TokenStatus::ok;
    out.token = TokenRecord{hash, st->text(0), st->text(1), st->int64(2)};
    if (auto done = st->run(); !done) return tl::unexpected(done.error());
    return out;
  }
  // Why it failed, for the audit log only (the gateway gets the same answer in every case).
  auto why = Statement::prepare(db_.get(), "SELECT used_at IS NOT NULL FROM tokens WHERE hash = ?");
  if (!why) return tl::unexpected(why.error());
  why->bind(1, hash);
  auto found = why->step();
  if (!found) return tl::unexpected(found.error());
  if (!*found) return out;
  out.status = why->int64(0) ? TokenStatus::used : TokenStatus::expired;
  return out;
}

Result<int> SqliteStore::purge_tokens(int64_t before) {
  auto st = Statement::prepare(db_.get(), "DELETE FROM tokens WHERE expires_at < ?");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, before);
  if (auto r = st->run(); !r) return tl::unexpected(r.error());
  return sqlite3_changes(db_.get());
}

Result<void> SqliteStore::audit(const AuditEvent& e) {
  auto st = Statement::prepare(db_.get(),
                               "INSERT INTO audit (at, event, user, source, detail) VALUES (?,?,?,?,?)");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, e.at).bind(2, e.event).bind(3, e.user).bind(4, e.source).bind(5, e.detail);
  return st->run();
}

Result<std::vector<AuditEvent>> SqliteStore::recent_audit(int limit) {
  auto st = Statement::prepare(db_.get(),
                               "SELECT id, at, event, user, source, detail FROM audit "
                               "ORDER BY id DESC LIMIT ?");
  if (!st) return tl::unexpected(st.error());
  st->bind(1, int64_t{limit});
  std::vector<AuditEvent> out;
  for (;;) {
    auto row = st->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out.push_back(AuditEvent{st->int64(0), st->int64(1), st->text(2), st->text(3), st->text(4),
                             st->text(5)});
  }
  return out;
}

}  // namespace appvirt::broker
