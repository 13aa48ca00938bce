#pragma once
// The policy in force and its versions (docs/policies.md "Versions"). The broker's Store is the
// source of truth: every change through the admin API, every rollback and every import of
// policy_file adds a numbered version there; this object keeps the newest one parsed in memory
// for launches and the app list. Calls are synchronous and made on the broker's I/O thread.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/store.h"
#include "common/result.h"
#include "policies/policy.h"

namespace appvirt::broker {

class PolicyStore {
 public:
  // Loads the newest version. policy_file (may be empty) is imported as a new version when no
  // version exists yet, or when its SHA-256 differs from the newest version imported from a file;
  // without a file and without versions, version 1 holds the built-in defaults (an empty set).
  // An invalid file, or a stored version that no longer parses, is an error.
  static Result<std::unique_ptr<PolicyStore>> open(Store& store,
                                                   const std::filesystem::path& policy_file,
                                                   std::function<int64_t()> wall_ms);

  const policies::PolicySet& current() const { return current_; }
  const PolicyVersion& current_version() const { return version_; }

  // Adds `set` as the newest version and puts it in force. author: "admin:<name>".
  Result<PolicyVersion> commit(const policies::PolicySet& set, const std::string& author,
                               const std::string& comment);
  // A new version with the content of version n; nullopt when n does not exist.
  Result<std::optional<PolicyVersion>> rollback(int64_t n, const std::string& author);

  Result<std::optional<PolicyVersion>> version(int64_t n) { return store_.policy_version(n); }
  // Newest first, without policy_json.
  Result<std::vector<PolicyVersion>> history(int limit) { return store_.policy_history(limit); }

 private:
  PolicyStore(Store& store, std::function<int64_t()> wall_ms)
      : store_(store), wall_ms_(std::move(wall_ms)) {}
  Result<void> import_file(const std::filesystem::path& file);
  Result<void> import_builtin();
  Result<void> load_latest();
  Result<PolicyVersion> add(const policies::PolicySet& set, PolicyVersion meta);

  Store& store_;
  std::function<int64_t()> wall_ms_;
  policies::PolicySet current_;
  PolicyVersion version_;
};

}  // namespace appvirt::broker
