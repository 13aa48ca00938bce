#pragma once
// Prometheus text exposition (format 0.0.4) for the broker's counters and gauges. Used from the
// I/O thread only.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace appvirt::broker {

class Metrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // Declares a family once (help text, "counter" or "gauge").
  void describe(const std::string& name, const std::string& type, const std::string& help);
  void inc(const std::string& name, const Labels& labels = {}, uint64_t by = 1);
  void set(const std::string& name, const Labels& labels, double value);
  uint64_t counter(const std::string& name, const Labels& labels = {}) const;

  std::string render() const;

 private:
  struct Family {
    std::string type;
    std::string help;
    std::map<std::string, double> series;  // rendered label set → value
  };
  static std::string label_text(const Labels& labels);
  std::map<std::string, Family> families_;
};

}  // namespace appvirt::broker
