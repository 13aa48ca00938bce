#include "policies/policy.h"

#include <algorithm>
#include <array>

namespace appvirt::policies {

namespace {

constexpr std::array<const char*, kFieldCount> kFieldNames = {
    "isolation",      "cpu_weight",   "cpu_max",           "memory_max",
    "pids_max",       "max_sessions", "idle_timeout",      "disconnect_timeout",
    "apps",           "clipboard",    "drive_redirection", "network",
    "max_resolution", "overflow_to_vm",
};

bool is_bare_key(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

}  // namespace

const char* to_string(Isolation v) { return v == Isolation::vm ? "vm" : "container"; }

const char* to_string(Clipboard v) {
  switch (v) {
    case Clipboard::none:
      return "none";
    case Clipboard::to_client:
      return "to-client";
    case Clipboard::to_server:
      return "to-server";
    case Clipboard::both:
      return "both";
  }
  return "none";
}

const char* to_string(Network v) {
  switch (v) {
    case Network::none:
      return "none";
    case Network::loopback:
      return "loopback";
    case Network::full:
      return "full";
  }
  return "none";
}

std::optional<Isolation> isolation_from_string(std::string_view s) {
  if (s == "container") return Isolation::container;
  if (s == "vm") return Isolation::vm;
  return std::nullopt;
}

std::optional<Clipboard> clipboard_from_string(std::string_view s) {
  for (Clipboard c :
       {Clipboard::none, Clipboard::to_client, Clipboard::to_server, Clipboard::both}) {
    if (s == to_string(c)) return c;
  }
  return std::nullopt;
}

std::optional<Network> network_from_string(std::string_view s) {
  for (Network n : {Network::none, Network::loopback, Network::full}) {
    if (s == to_string(n)) return n;
  }
  return std::nullopt;
}

bool AppList::allows(std::string_view app_id) const {
  return all || ids.count(std::string(app_id)) > 0;
}

ScreenSize EffectivePolicy::clamp(ScreenSize requested) const {
  return {std::min(requested.width, max_resolution.width),
          std::min(requested.height, max_resolution.height)};
}

bool EffectivePolicy::clipboard_to_client() const {
  return clipboard == Clipboard::to_client || clipboard == Clipboard::both;
}

bool EffectivePolicy::clipboard_to_server() const {
  return clipboard == Clipboard::to_server || clipboard == Clipboard::both;
}

EffectivePolicy builtin_defaults() { return EffectivePolicy{}; }

const char* field_name(Field f) { return kFieldNames[static_cast<size_t>(f)]; }

std::optional<Field> field_from_name(std::string_view name) {
  for (size_t i = 0; i < kFieldCount; ++i) {
    if (name == kFieldNames[i]) return static_cast<Field>(i);
  }
  return std::nullopt;
}

bool is_valid_principal_name(std::string_view name) {
  if (name.empty() || name.size() > 256 || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '$' || c == '\\' || c == '-';
  });
}

bool is_valid_app_id(std::string_view id) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (id.empty() || id.size() > 64 || !alnum(id[0])) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

std::string rule_path(std::string_view kind, std::string_view name) {
  std::string out(kind);
  if (!out.empty()) out += '.';
  if (is_bare_key(name)) return out.append(name);
  out += '"';
  for (char c : name) {
    // Only names that failed validation can hold these; keep the path printable and unambiguous.
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';
      continue;
    }
    out += c;
  }
  return out += '"';
}

std::string PolicyIssue::str() const {
  std::string out;
  if (!file.empty()) out = line > 0 ? file + ":" + std::to_string(line) + ": " : file + ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

std::string PolicyIssues::report() const {
  std::string out;
  for (const auto& i : items) out += i.str() + "\n";
  return out;
}

}  // namespace appvirt::policies
