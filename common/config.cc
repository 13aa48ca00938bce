#include "common/config.h"

#include <fstream>
#include <sstream>

namespace appvirt {

std::string ConfigIssue::str() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  return out + ": " + key + ": " + message;
}

Result<ConfigReader> ConfigReader::parse(std::string_view text, std::string file_name) {
  try {
    toml::table t = toml::parse(text, file_name);
    return ConfigReader(std::move(t), std::move(file_name));
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return fail(file_name + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                std::string(e.description()));
  }
}

Result<ConfigReader> ConfigReader::load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return fail_errno("open(" + file.string() + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file.string());
}

const toml::node* ConfigReader::find(std::string_view key) {
  read_keys_.emplace(key);
  return root_.at_path(key).node();
}

int ConfigReader::line_of(std::string_view key) const {
  const toml::node* n = root_.at_path(key).node();
  return n ? static_cast<int>(n->source().begin.line) : 0;
}

void ConfigReader::add_issue(std::string_view key, std::string message) {
  issues_.push_back({file_, line_of(key), std::string(key), std::move(message)});
}

std::string ConfigReader::get_string(std::string_view key, std::string def) {
  return get_optional_string(key).value_or(std::move(def));
}

std::optional<std::string> ConfigReader::get_optional_string(std::string_view key) {
  const toml::node* n = find(key);
  if (!n) return std::nullopt;
  if (auto v = n->value<std::string>()) return *v;
  add_issue(key, "must be a string");
  return std::nullopt;
}

std::filesystem::path ConfigReader::get_absolute_path(std::string_view key,
                                                     std::filesystem::path def) {
  auto v = get_optional_string(key);
  if (!v) return def;
  if (v->empty() || (*v)[0] != '/') {
    add_issue(key, "must be an absolute path");
    return def;
  }
  return std::filesystem::path(*v);
}

int64_t ConfigReader::get_int(std::string_view key, int64_t def, int64_t min, int64_t max) {
  return get_optional_int(key, min, max).value_or(def);
}

std::optional<int64_t> ConfigReader::get_optional_int(std::string_view key, int64_t min,
                                                      int64_t max) {
  const toml::node* n = find(key);
  if (!n) return std::nullopt;
  auto v = n->as_integer();
  if (!v) {
    add_issue(key, "must be an integer");
    return std::nullopt;
  }
  if (v->get() < min || v->get() > max) {
    add_issue(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                       " (got " + std::to_string(v->get()) + ")");
    return std::nullopt;
  }
  return v->get();
}

bool ConfigReader::get_bool(std::string_view key, bool def) {
  const toml::node* n = find(key);
  if (!n) return def;
  if (auto v = n->value<bool>()) return *v;
  add_issue(key, "must be true or false");
  return def;
}

std::vector<std::string> ConfigReader::get_string_array(std::string_view key,
                                                        std::vector<std::string> def) {
  const toml::node* n = find(key);
  if (!n) return def;
  const toml::array* a = n->as_array();
  if (!a) {
    add_issue(key, "must be an array of strings");
    return def;
  }
  std::vector<std::string> out;
  for (const auto& el : *a) {
    auto s = el.value<std::string>();
    if (!s) {
      add_issue(key, "must be an array of strings");
      return def;
    }
    out.push_back(*s);
  }
  return out;
}

std::optional<uint64_t> ConfigReader::get_optional_size(std::string_view key, uint64_t min,
                                                        uint64_t max) {
  const toml::node* n = find(key);
  if (!n) return std::nullopt;
  std::optional<uint64_t> bytes;
  if (auto i = n->value<int64_t>(); i && *i >= 0) bytes = static_cast<uint64_t>(*i);
  if (auto s = n->value<std::string>()) bytes = parse_size(*s);
  if (!bytes) {
    add_issue(key, "must be a size such as 536870912, \"512M\" or \"2G\"");
    return std::nullopt;
  }
  if (*bytes < min || *bytes > max) {
    add_issue(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                       " bytes (got " + std::to_string(*bytes) + ")");
    return std::nullopt;
  }
  return bytes;
}

void ConfigReader::collect_unknown(const toml::table& t, const std::string& prefix,
                                   const std::set<std::string>& open_tables) {
  for (const auto& [k, v] : t) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (open_tables.count(key)) continue;
    if (const toml::table* sub = v.as_table()) {
      collect_unknown(*sub, key, open_tables);
    } else if (!read_keys_.count(key)) {
      issues_.push_back({file_, static_cast<int>(v.source().begin.line), key, "unknown key"});
    }
  }
}

void ConfigReader::check_unknown_keys(const std::set<std::string>& open_tables) {
  collect_unknown(root_, "", open_tables);
}

std::string ConfigReader::report() const {
  std::string out;
  for (const auto& i : issues_) out += i.str() + "\n";
  return out;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (value > (UINT64_MAX - 9) / 10) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K" || unit == "KiB") shift = 10;
  else if (unit == "M" || unit == "MiB") shift = 20;
  else if (unit == "G" || unit == "GiB") shift = 30;
  else if (unit == "T" || unit == "TiB") shift = 40;
  else return std::nullopt;
  if (shift && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

}  // namespace appvirt
