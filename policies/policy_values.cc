#include "policies/policy_values.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <limits>

#include "common/config.h"

namespace appvirt::policies {

using nlohmann::json;

namespace {

tl::unexpected<std::string> bad(std::string message) {
  return tl::unexpected<std::string>(std::move(message));
}

// The offending value as the user wrote it, short enough for one log line.
// Cut on a UTF-8 character boundary: the message ends up in JSON replies, and nlohmann's dump()
// throws on a broken sequence.
std::string shown(const json& v) {
  std::string s = v.dump();
  if (s.size() <= 40) return s;
  size_t cut = 37;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

std::string range_text(int64_t min, int64_t max) {
  return "between " + std::to_string(min) + " and " + std::to_string(max);
}

// An integer in [min, max]; a float is a type error, never rounded.
ValueResult<int64_t> bounded_int(const json& v, int64_t min, int64_t max, std::string_view what) {
  if (!v.is_number_integer())
    return bad("must be " + std::string(what) + " (got " + shown(v) + ")");
  bool huge = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX);
  if (huge || v.get<int64_t>() < min || v.get<int64_t>() > max) {
    return bad("must be " + range_text(min, max) + " (got " + shown(v) + ")");
  }
  return v.get<int64_t>();
}

// An integer bound or "unlimited".
ValueResult<Limit> count_limit(const json& v, int64_t min, int64_t max) {
  if (v.is_string() && v.get<std::string>() == "unlimited") return Limit::unlimited();
  std::string what = "an integer " + range_text(min, max) + " or \"unlimited\"";
  auto x = bounded_int(v, min, max, what);
  if (!x) return tl::unexpected(x.error());
  return Limit::of(static_cast<uint64_t>(*x));
}

template <class E, size_t N>
ValueResult<E> enum_value(const json& v, const std::array<E, N>& all) {
  std::string choices;
  for (E e : all) choices += std::string(choices.empty() ? "" : ", ") + "\"" + to_string(e) + "\"";
  if (v.is_string()) {
    for (E e : all) {
      if (v.get<std::string>() == to_string(e)) return e;
    }
  }
  return bad("must be one of " + choices + " (got " + shown(v) + ")");
}

// Reads "<digits><unit>" pairs with units strictly descending; false on any syntax error.
bool add_duration_parts(std::string_view text, uint64_t& total) {
  static constexpr std::array<std::pair<char, uint64_t>, 4> kUnits = {
      {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};
  size_t next_unit = 0, i = 0;
  while (i < text.size()) {
    uint64_t n = 0;
    size_t start = i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (n > 1'000'000'000) return false;
      n = n * 10 + static_cast<uint64_t>(text[i] - '0');
    }
    if (i == start || i == text.size()) return false;
    size_t u = next_unit;
    while (u < kUnits.size() && kUnits[u].first != text[i]) ++u;
    if (u == kUnits.size()) return false;
    total += n * kUnits[u].second;
    next_unit = u + 1;
    ++i;
  }
  return true;
}

}  // namespace

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text == "never" || text == "0") return std::chrono::seconds{0};
  uint64_t total = 0;
  if (text.empty() || !add_duration_parts(text, total)) return std::nullopt;
  return std::chrono::seconds{static_cast<int64_t>(total)};
}

std::string format_duration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s <= 0) return "never";
  std::string out;
  for (auto [unit, len] : {std::pair{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}) {
    if (s >= len) {
      out += std::to_string(s / len) + unit;
      s %= len;
    }
  }
  return out;
}

std::string format_size(uint64_t bytes) {
  for (auto [unit, shift] : {std::pair{'T', 40}, {'G', 30}, {'M', 20}, {'K', 10}}) {
    uint64_t mask = (uint64_t{1} << shift) - 1;
    if (bytes != 0 && (bytes & mask) == 0) return std::to_string(bytes >> shift) + unit;
  }
  return std::to_string(bytes);
}

std::optional<ScreenSize> parse_screen_size(std::string_view text) {
  size_t x = text.find('x');
  if (x == std::string_view::npos || x == 0 || x + 1 == text.size() || x > 5) return std::nullopt;
  std::string_view w = text.substr(0, x), h = text.substr(x + 1);
  auto digits = [](std::string_view s) {
    return s.size() <= 5 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(w) || !digits(h)) return std::nullopt;
  return ScreenSize{std::stoi(std::string(w)), std::stoi(std::string(h))};
}

std::string format_screen_size(ScreenSize s) {
  return std::to_string(s.width) + "x" + std::to_string(s.height);
}

ValueResult<Isolation> read_isolation(const json& v) {
  return enum_value(v, std::array{Isolation::container, Isolation::vm});
}

ValueResult<int64_t> read_cpu_weight(const json& v) {
  return bounded_int(v, kMinCpuWeight, kMaxCpuWeight, "an integer");
}

ValueResult<Limit> read_cpu_max(const json& v) {
  return count_limit(v, kMinCpuMaxPercent, kMaxCpuMaxPercent);
}

ValueResult<Limit> read_pids_max(const json& v) { return count_limit(v, kMinPidsMax, kMaxPidsMax); }

ValueResult<Limit> read_memory_max(const json& v) {
  std::optional<uint64_t> bytes;
  if (v.is_string() && v.get<std::string>() == "unlimited") return Limit::unlimited();
  if (v.is_number_unsigned()) bytes = v.get<uint64_t>();
  if (v.is_string()) bytes = parse_size(v.get<std::string>());
  if (!bytes) {
    return bad("must be a size such as \"512M\", \"2G\" or a byte count, or \"unlimited\" (got " +
               shown(v) + ")");
  }
  if (*bytes < kMinMemoryMax || *bytes > kMaxMemoryMax) {
    return bad("must be between " + format_size(kMinMemoryMax) + " and " +
               format_size(kMaxMemoryMax) + " (got " + shown(v) + ")");
  }
  return Limit::of(*bytes);
}

ValueResult<int64_t> read_max_sessions(const json& v) {
  return bounded_int(v, kMinMaxSessions, kMaxMaxSessions, "an integer");
}

ValueResult<std::chrono::seconds> read_timeout(const json& v) {
  std::optional<std::chrono::seconds> d;
  if (v.is_number_integer() &&
      !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) &&
      v.get<int64_t>() >= 0) {
    d = std::chrono::seconds{v.get<int64_t>()};
  }
  if (v.is_string()) d = parse_duration(v.get<std::string>());
  if (!d) {
    return bad(
        "must be a duration such as \"90s\", \"15m\", \"2h\", \"1h30m\", or 0 / \"never\" (got " +
        shown(v) + ")");
  }
  if (d->count() != 0 && (*d < kMinTimeout || *d > kMaxTimeout)) {
    return bad("must be 0 (never) or between " + format_duration(kMinTimeout) + " and " +
               format_duration(kMaxTimeout) + " (got " + shown(v) + ")");
  }
  return *d;
}

ValueResult<AppList> read_apps(const json& v) {
  if (!v.is_array()) return bad("must be an array of app ids, or [\"*\"] (got " + shown(v) + ")");
  AppList out;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& el = v[i];
    std::string at = "element " + std::to_string(i + 1) + " ";
    if (!el.is_string()) return bad(at + "must be a string (got " + shown(el) + ")");
    const std::string& id = el.get_ref<const std::string&>();
    if (id == "*") {
      if (v.size() != 1) return bad("\"*\" (all apps) must be the only element");
      return AppList::everything();
    }
    if (!is_valid_app_id(id)) {
      return bad(
          at + shown(el) +
          " is not an app id (1-64 characters [a-z0-9._-], starting with a letter or digit)");
    }
    if (!out.ids.insert(id).second) return bad(at + shown(el) + " is listed twice");
  }
  return out;
}

ValueResult<Clipboard> read_clipboard(const json& v) {
  return enum_value(
      v, std::array{Clipboard::none, Clipboard::to_client, Clipboard::to_server, Clipboard::both});
}

ValueResult<bool> read_bool(const json& v) {
  if (!v.is_boolean()) return bad("must be true or false (got " + shown(v) + ")");
  return v.get<bool>();
}

ValueResult<Network> read_network(const json& v) {
  return enum_value(v, std::array{Network::none, Network::loopback, Network::full});
}

ValueResult<ScreenSize> read_max_resolution(const json& v) {
  std::optional<ScreenSize> s;
  if (v.is_string()) s = parse_screen_size(v.get<std::string>());
  if (!s) return bad("must be WIDTHxHEIGHT such as \"1920x1080\" (got " + shown(v) + ")");
  if (s->width < kMinResolution.width || s->height < kMinResolution.height ||
      s->width > kMaxResolution.width || s->height > kMaxResolution.height) {
    return bad("must be between " + format_screen_size(kMinResolution) + " and " +
               format_screen_size(kMaxResolution) + " (got " + shown(v) + ")");
  }
  return *s;
}

ValueResult<int64_t> read_priority(const json& v) {
  return bounded_int(v, kMinPriority, kMaxPriority, "an integer");
}

json write_enum(const Isolation& v) { return to_string(v); }
json write_enum(const Clipboard& v) { return to_string(v); }
json write_enum(const Network& v) { return to_string(v); }
json write_int(const int64_t& v) { return v; }
json write_bool(const bool& v) { return v; }

json write_count_limit(const Limit& v) { return v.value ? json(*v.value) : json("unlimited"); }

json write_size_limit(const Limit& v) {
  return v.value ? json(format_size(*v.value)) : json("unlimited");
}

json write_duration(const std::chrono::seconds& v) { return format_duration(v); }

json write_apps(const AppList& v) {
  if (v.all) return json::array({"*"});
  json out = json::array();
  for (const auto& id : v.ids) out.push_back(id);
  return out;
}

json write_screen_size(const ScreenSize& v) { return format_screen_size(v); }

Isolation meet(const Isolation& a, const Isolation& b) {
  return a == Isolation::vm || b == Isolation::vm ? Isolation::vm : Isolation::container;
}

int64_t meet_min(const int64_t& a, const int64_t& b) { return std::min(a, b); }

Limit meet(const Limit& a, const Limit& b) {
  if (a.is_unlimited()) return b;
  if (b.is_unlimited()) return a;
  return Limit::of(std::min(*a.value, *b.value));
}

std::chrono::seconds meet_timeout(const std::chrono::seconds& a, const std::chrono::seconds& b) {
  if (a.count() == 0) return b;
  if (b.count() == 0) return a;
  return std::min(a, b);
}

AppList meet(const AppList& a, const AppList& b) {
  if (a.all) return b;
  if (b.all) return a;
  AppList out;
  std::set_intersection(a.ids.begin(), a.ids.end(), b.ids.begin(), b.ids.end(),
                        std::inserter(out.ids, out.ids.end()));
  return out;
}

Clipboard meet(const Clipboard& a, const Clipboard& b) {
  bool to_client = (a == Clipboard::to_client || a == Clipboard::both) &&
                   (b == Clipboard::to_client || b == Clipboard::both);
  bool to_server = (a == Clipboard::to_server || a == Clipboard::both) &&
                   (b == Clipboard::to_server || b == Clipboard::both);
  if (to_client && to_server) return Clipboard::both;
  if (to_client) return Clipboard::to_client;
  return to_server ? Clipboard::to_server : Clipboard::none;
}

bool meet_bool(const bool& a, const bool& b) { return a && b; }

Network meet(const Network& a, const Network& b) { return std::min(a, b); }

ScreenSize meet(const ScreenSize& a, const ScreenSize& b) {
  return {std::min(a.width, b.width), std::min(a.height, b.height)};
}

}  // namespace appvirt::policies
