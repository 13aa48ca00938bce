#pragma once
// Structured logging on spdlog. Every line is "ts level component event key=value ...", so logs
// can be grepped and parsed. Never pass a password, token or session secret as a field.
#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "common/result.h"

namespace appvirt {

// Sets up the default logger for a daemon: name becomes the component field; level is one of
// trace, debug, info, warn, error. Logs go to stderr (journald picks them up under systemd).
void init_logging(std::string_view component, std::string_view level = "info");

// Quotes a value for key=value output when it contains spaces, quotes or control characters.
std::string log_quote(std::string_view value);

}  // namespace appvirt

// APPVIRT_LOG_ERR(error, "event", "key={} ...", args...): logs an Error with its errno text.
#define APPVIRT_LOG_ERR(err_value, event, ...) \
  spdlog::error("{} error={} " __VA_ARGS__, event, ::appvirt::log_quote((err_value).str()))
