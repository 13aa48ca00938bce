#include "broker/metrics.h"

#include <cmath>
#include <cstdio>

namespace appvirt::broker {

namespace {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

}  // namespace

std::string Metrics::label_text(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + escape_label(labels[i].second) + "\"";
  }
  return out + "}";
}

void Metrics::describe(const std::string& name, const std::string& type, const std::string& help) {
  Family& f = families_[name];
  f.type = type;
  f.help = help;
}

void Metrics::inc(const std::string& name, const Labels& labels, uint64_t by) {
  families_[name].series[label_text(labels)] += static_cast<double>(by);
}

void Metrics::set(const std::string& name, const Labels& labels, double value) {
  families_[name].series[label_text(labels)] = value;
}

uint64_t Metrics::counter(const std::string& name, const Labels& labels) const {
  auto f = families_.find(name);
  if (f == families_.end()) return 0;
  auto s = f->second.series.find(label_text(labels));
  return s == f->second.series.end() ? 0 : static_cast<uint64_t>(s->second);
}

std::string Metrics::render() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + " " + (f.type.empty() ? "untyped" : f.type) + "\n";
    // A described counter with no samples yet still shows 0, so dashboards see the series.
    if (f.series.empty() && f.type == "counter") out += name + " 0\n";
    for (const auto& [labels, value] : f.series) out += name + labels + " " + number(value) + "\n";
  }
  return out;
}

}  // namespace appvirt::broker
