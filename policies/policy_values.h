#pragma once
// The value of each policy field: how it is read (from a JSON value; the TOML reader converts its
// nodes to JSON values first, so files and the admin API share one set of checks), how it is
// written back, and its "meet" — the most restrictive value two rules both allow, which settles a
// conflict between groups of equal priority (resolver.h).
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "policies/policy.h"

namespace appvirt::policies {

// A value or the reason it is invalid (without the key: the caller knows where it came from).
template <class T>
using ValueResult = tl::expected<T, std::string>;

// Ranges. Resource bounds match what hostd accepts (docs/session-host.md).
inline constexpr int64_t kMinCpuWeight = 1, kMaxCpuWeight = 10000;
inline constexpr int64_t kMinCpuMaxPercent = 1, kMaxCpuMaxPercent = 100000;
inline constexpr uint64_t kMinMemoryMax = 16ull << 20, kMaxMemoryMax = 1ull << 40;
inline constexpr int64_t kMinPidsMax = 8, kMaxPidsMax = 4194304;
inline constexpr int64_t kMinMaxSessions = 1, kMaxMaxSessions = 1000;
inline constexpr std::chrono::seconds kMinTimeout{60}, kMaxTimeout{30 * 24 * 3600};
inline constexpr ScreenSize kMinResolution{640, 480}, kMaxResolution{8192, 8192};
inline constexpr int64_t kMinPriority = -1000000, kMaxPriority = 1000000;

// Durations: an integer number of seconds, or "never"/"0", or units in descending order from
// d, h, m, s: "90s", "15m", "2h", "1h30m", "7d". Returns nullopt on bad syntax or overflow.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);
// "never" for 0, else the compact form parse_duration reads ("1h30m").
std::string format_duration(std::chrono::seconds d);
// The largest exact binary unit: "2G", "1536M", "12345"; "unlimited" for an unlimited Limit.
std::string format_size(uint64_t bytes);
// "1920x1080"; nullopt on bad syntax.
std::optional<ScreenSize> parse_screen_size(std::string_view text);
std::string format_screen_size(ScreenSize s);

// Readers, one per field (ranges differ between fields of one type).
ValueResult<Isolation> read_isolation(const nlohmann::json& v);
ValueResult<int64_t> read_cpu_weight(const nlohmann::json& v);
ValueResult<Limit> read_cpu_max(const nlohmann::json& v);
ValueResult<Limit> read_memory_max(const nlohmann::json& v);
ValueResult<Limit> read_pids_max(const nlohmann::json& v);
ValueResult<int64_t> read_max_sessions(const nlohmann::json& v);
ValueResult<std::chrono::seconds> read_timeout(const nlohmann::json& v);
ValueResult<AppList> read_apps(const nlohmann::json& v);
ValueResult<Clipboard> read_clipboard(const nlohmann::json& v);
ValueResult<bool> read_bool(const nlohmann::json& v);
ValueResult<Network> read_network(const nlohmann::json& v);
ValueResult<ScreenSize> read_max_resolution(const nlohmann::json& v);
ValueResult<int64_t> read_priority(const nlohmann::json& v);

// Writers: the canonical form every reader accepts back.
nlohmann::json write_enum(const Isolation& v);
nlohmann::json write_enum(const Clipboard& v);
nlohmann::json write_enum(const Network& v);
nlohmann::json write_int(const int64_t& v);
nlohmann::json write_count_limit(const Limit& v);  // integer or "unlimited"
nlohmann::json write_size_limit(const Limit& v);   // "2G" or "unlimited"
nlohmann::json write_duration(const std::chrono::seconds& v);
nlohmann::json write_apps(const AppList& v);
nlohmann::json write_bool(const bool& v);
nlohmann::json write_screen_size(const ScreenSize& v);

// Meets: the most restrictive value that both arguments allow.
Isolation meet(const Isolation& a, const Isolation& b);  // vm (the stronger isolation) wins
int64_t meet_min(const int64_t& a, const int64_t& b);
Limit meet(const Limit& a, const Limit& b);  // unlimited is the largest
std::chrono::seconds meet_timeout(const std::chrono::seconds& a, const std::chrono::seconds& b);
AppList meet(const AppList& a, const AppList& b);           // intersection
Clipboard meet(const Clipboard& a, const Clipboard& b);     // the directions both allow
bool meet_bool(const bool& a, const bool& b);               // allowed only if both allow
Network meet(const Network& a, const Network& b);           // none < loopback < full
ScreenSize meet(const ScreenSize& a, const ScreenSize& b);  // dimension by dimension

}  // namespace appvirt::policies
