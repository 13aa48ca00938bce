#pragma once
// rdp-probe's RDP session: FreeRDP client + software GDI, no X. Connects through a ByteRelay,
// waits for frames, optionally types, compares pixels and fills a ProbeReport.
#include "tests/tools/probe_options.h"
#include "tests/tools/probe_report.h"

namespace appvirt::probe {

// Routes FreeRDP's (WLog) output to stderr, so stdout carries only the JSON report.
void configure_freerdp_logging(const ProbeOptions& options, bool level_given);

// Runs one connection as the options describe. Never throws.
ProbeReport run_probe(const ProbeOptions& options);

}  // namespace appvirt::probe
