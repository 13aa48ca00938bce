#pragma once
// RAII over the sqlite3 C API: a database handle closed on destruction and prepared statements
// finalized on destruction, with errors as Result carrying SQLite's message.
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace appvirt::broker::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

// Opens (creating if needed) a database file in serialized-threading mode.
Result<Db> open(const std::string& path);

// Runs one or more statements without results (schema, pragmas, BEGIN/COMMIT).
Result<void> exec(sqlite3* db, const std::string& sql);

class Statement {
 public:
  static Result<Statement> prepare(sqlite3* db, std::string_view sql);
  Statement(Statement&& o) noexcept
      : db_(o.db_), stmt_(std::exchange(o.stmt_, nullptr)), bind_failed_(o.bind_failed_) {}
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite. Text is copied (SQLITE_TRANSIENT).
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, int64_t value);
  Statement& bind_null(int index);
  Statement& bind_optional(int index, const std::optional<std::string>& text);

  // Steps once: true when a row is available, false when done.
  Result<bool> step();
  // Steps to completion, for statements without result rows.
  Result<void> run();

  std::string text(int column) const;
  std::optional<std::string> optional_text(int column) const;
  int64_t int64(int column) const;
  bool is_null(int column) const;

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  bool bind_failed_ = false;
};

}  // namespace appvirt::broker::sqlite
