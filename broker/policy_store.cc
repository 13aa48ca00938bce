#include "broker/policy_store.h"

#include "broker/crypto.h"
#include "common/log.h"
#include "common/tls_cert.h"
#include "policies/policy_file.h"
#include "policies/policy_json.h"

namespace appvirt::broker {

namespace {

std::string one_line_report(const policies::PolicyIssues& issues) {
  std::string report = issues.report();
  while (!report.empty() && report.back() == '\n') report.pop_back();
  return report;
}

}  // namespace

Result<std::unique_ptr<PolicyStore>> PolicyStore::open(Store& store,
                                                       const std::filesystem::path& policy_file,
                                                       std::function<int64_t()> wall_ms) {
  std::unique_ptr<PolicyStore> ps(new PolicyStore(store, std::move(wall_ms)));
  if (!policy_file.empty()) {
    if (auto r = ps->import_file(policy_file); !r) return tl::unexpected(r.error());
  }
  auto latest = store.latest_policy_version();
  if (!latest) return tl::unexpected(wrap("policy versions", latest.error()));
  if (!*latest) {
    if (auto r = ps->import_builtin(); !r) return tl::unexpected(r.error());
  }
  if (auto r = ps->load_latest(); !r) return tl::unexpected(r.error());
  return ps;
}

Result<void> PolicyStore::import_file(const std::filesystem::path& file) {
  // The file is read once here (the broker reads it only at start): hash and parse the same bytes.
  auto text = read_small_file(file);
  if (!text) return tl::unexpected(wrap("policy_file", text.error()));
  std::string hash = sha256_hex(*text);
  auto last = store_.latest_file_import();
  if (!last) return tl::unexpected(wrap("policy versions", last.error()));
  if (*last && (*last)->file_sha256 == hash) return {};  // unchanged: the store stays in force
  auto set = policies::parse_policy_toml(*text, file.string());
  if (!set) return fail(one_line_report(set.error()));
  PolicyVersion meta;
  meta.author = "file:" + file.string();
  meta.comment = *last ? "imported at start: the file changed since version " +
                             std::to_string((*last)->version)
                       : "imported at first start";
  meta.file_sha256 = hash;
  auto added = add(*set, meta);
  if (!added) return tl::unexpected(added.error());
  (void)store_.audit(AuditEvent{0, added->created_at, "policy_import", "", meta.author,
                                "version=" + std::to_string(added->version) + " sha256=" + hash});
  spdlog::info("broker policy_import version={} file={} sha256={}", added->version,
               log_quote(file.string()), hash);
  return {};
}

Result<void> PolicyStore::import_builtin() {
  PolicyVersion meta;
  meta.author = "builtin";
  meta.comment = "built-in defaults (no policy_file)";
  auto added = add(policies::PolicySet{}, meta);
  if (!added) return tl::unexpected(added.error());
  (void)store_.audit(AuditEvent{0, added->created_at, "policy_import", "", meta.author,
                                "version=" + std::to_string(added->version)});
  return {};
}

Result<void> PolicyStore::load_latest() {
  auto latest = store_.latest_policy_version();
  if (!latest) return tl::unexpected(wrap("policy versions", latest.error()));
  if (!*latest) return fail("policy versions: none stored");
  auto set = policies::policy_set_from_json_text((*latest)->policy_json);
  if (!set) {
    // Only a broker with different validation rules (a downgrade) or a hand-edited database
    // gets here; running with some other policy than the stored one would be worse than stopping.
    return fail("policy version " + std::to_string((*latest)->version) +
                " in the database is not valid: " + one_line_report(set.error()));
  }
  current_ = std::move(*set);
  version_ = std::move(**latest);
  return {};
}

Result<PolicyVersion> PolicyStore::add(const policies::PolicySet& set, PolicyVersion meta) {
  meta.created_at = wall_ms_();
  meta.policy_json = policies::policy_set_to_json(set).dump();
  return store_.add_policy_version(meta);
}

Result<PolicyVersion> PolicyStore::commit(const policies::PolicySet& set, const std::string& author,
                                          const std::string& comment) {
  PolicyVersion meta;
  meta.author = author;
  meta.comment = comment;
  auto added = add(set, std::move(meta));
  if (!added) return tl::unexpected(added.error());
  current_ = set;
  version_ = *added;
  return added;
}

Result<std::optional<PolicyVersion>> PolicyStore::rollback(int64_t n, const std::string& author) {
  auto old = store_.policy_version(n);
  if (!old) return tl::unexpected(old.error());
  if (!*old) return std::optional<PolicyVersion>();
  auto set = policies::policy_set_from_json_text((*old)->policy_json);
  if (!set) {
    return fail("policy version " + std::to_string(n) + " is not valid any more: " +
                one_line_report(set.error()));
  }
  auto added = commit(*set, author, "rollback to version " + std::to_string(n));
  if (!added) return tl::unexpected(added.error());
  return std::optional<PolicyVersion>(std::move(*added));
}

}  // namespace appvirt::broker
