#pragma once
// The one table of policy fields. The file reader, the JSON conversion and the resolver walk it
// with for_each_field, so adding a field means adding it to policy.h and one line here.
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "policies/policy.h"
#include "policies/policy_values.h"

namespace appvirt::policies {

template <class T>
struct FieldSpec {
  Field field;
  std::optional<T> Rule::*in_rule;
  T EffectivePolicy::*in_effective;
  ValueResult<T> (*read)(const nlohmann::json&);
  nlohmann::json (*write)(const T&);
  T (*meet)(const T&, const T&);

  std::string_view name() const { return field_name(field); }
};

// Calls visit(FieldSpec<T>) for every field, in Field order.
template <class Visitor>
void for_each_field(Visitor&& visit) {
  using std::chrono::seconds;
  using E = EffectivePolicy;
  visit(FieldSpec<Isolation>{Field::isolation, &Rule::isolation, &E::isolation, read_isolation,
                             write_enum, meet});
  visit(FieldSpec<int64_t>{Field::cpu_weight, &Rule::cpu_weight, &E::cpu_weight, read_cpu_weight,
                           write_int, meet_min});
  visit(FieldSpec<Limit>{Field::cpu_max, &Rule::cpu_max, &E::cpu_max, read_cpu_max,
                         write_count_limit, meet});
  visit(FieldSpec<Limit>{Field::memory_max, &Rule::memory_max, &E::memory_max, read_memory_max,
                         write_size_limit, meet});
  visit(FieldSpec<Limit>{Field::pids_max, &Rule::pids_max, &E::pids_max, read_pids_max,
                         write_count_limit, meet});
  visit(FieldSpec<int64_t>{Field::max_sessions, &Rule::max_sessions, &E::max_sessions,
                           read_max_sessions, write_int, meet_min});
  visit(FieldSpec<seconds>{Field::idle_timeout, &Rule::idle_timeout, &E::idle_timeout, read_timeout,
                           write_duration, meet_timeout});
  visit(FieldSpec<seconds>{Field::disconnect_timeout, &Rule::disconnect_timeout,
                           &E::disconnect_timeout, read_timeout, write_duration, meet_timeout});
  visit(FieldSpec<AppList>{Field::apps, &Rule::apps, &E::apps, read_apps, write_apps, meet});
  visit(FieldSpec<Clipboard>{Field::clipboard, &Rule::clipboard, &E::clipboard, read_clipboard,
                             write_enum, meet});
  visit(FieldSpec<bool>{Field::drive_redirection, &Rule::drive_redirection, &E::drive_redirection,
                        read_bool, write_bool, meet_bool});
  visit(FieldSpec<Network>{Field::network, &Rule::network, &E::network, read_network, write_enum,
                           meet});
  visit(FieldSpec<ScreenSize>{Field::max_resolution, &Rule::max_resolution, &E::max_resolution,
                              read_max_resolution, write_screen_size, meet});
  visit(FieldSpec<bool>{Field::overflow_to_vm, &Rule::overflow_to_vm, &E::overflow_to_vm, read_bool,
                        write_bool, meet_bool});
}

}  // namespace appvirt::policies
