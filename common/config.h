#pragma once
// Reads a TOML config file into a validated struct. Every problem is reported with the file, the
// line and the full key ("hostd.toml:12: limits.memory_max: must be between 16 MiB and 1 TiB"),
// and all problems are collected before giving up, so an admin fixes a file in one pass.
// Unknown keys are errors (a typo must not silently fall back to a default).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <vector>

#include "common/result.h"

namespace appvirt {

struct ConfigIssue {
  std::string file;
  int line = 0;  // 0 when the key is missing altogether
  std::string key;
  std::string message;
  std::string str() const;
};

class ConfigReader {
 public:
  // Parses text as TOML; a syntax error comes back as an Error "file:line:col: description".
  static Result<ConfigReader> parse(std::string_view text, std::string file_name);
  static Result<ConfigReader> load(const std::filesystem::path& file);

  // Getters: key is a dotted path ("limits.memory_max"). A missing key yields the default;
  // a key of the wrong type or out of range records an issue and yields the default.
  std::string get_string(std::string_view key, std::string def);
  std::optional<std::string> get_optional_string(std::string_view key);
  int64_t get_int(std::string_view key, int64_t def, int64_t min, int64_t max);
  std::optional<int64_t> get_optional_int(std::string_view key, int64_t min, int64_t max);
  bool get_bool(std::string_view key, bool def);
  std::vector<std::string> get_string_array(std::string_view key, std::vector<std::string> def);
  // An absolute path; a relative one would depend on the daemon's working directory.
  std::filesystem::path get_absolute_path(std::string_view key, std::filesystem::path def);
  // Sizes like 512, "512M", "2G" (binary units), bounded.
  std::optional<uint64_t> get_optional_size(std::string_view key, uint64_t min, uint64_t max);

  // Records an issue at a key's line (for checks across several keys).
  void add_issue(std::string_view key, std::string message);

  // Call after all getters: every key present in the file that no getter asked for is an issue.
  // Keys under a prefix listed in open_tables (e.g. "apps") are not checked.
  void check_unknown_keys(const std::set<std::string>& open_tables = {});

  const std::vector<ConfigIssue>& issues() const { return issues_; }
  bool ok() const { return issues_.empty(); }
  // All issues joined, one per line; empty when ok().
  std::string report() const;
  const toml::table& root() const { return root_; }

 private:
  ConfigReader(toml::table root, std::string file) : root_(std::move(root)), file_(std::move(file)) {}
  const toml::node* find(std::string_view key);
  int line_of(std::string_view key) const;
  void collect_unknown(const toml::table& t, const std::string& prefix,
                       const std::set<std::string>& open_tables);

  toml::table root_;
  std::string file_;
  std::set<std::string, std::less<>> read_keys_;
  std::vector<ConfigIssue> issues_;
};

// Parses "512", "512K", "64M", "2G", "1T" (binary units) into bytes.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace appvirt
