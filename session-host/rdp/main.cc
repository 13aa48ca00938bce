// appvirt-rdp: one RDP endpoint per session display. See docs/session-host.md.
#include <malloc.h>

#include "session-host/rdp/endpoint.h"
#include "session-host/rdp/options.h"

namespace {

// One endpoint per session, so its idle footprint is multiplied by the sessions of a host.
// glibc gives each of FreeRDP's client threads its own malloc arena, and keeps freed memory of
// an arena (and below the dynamic mmap threshold) mapped; measured with one client connected
// these three settings cut the endpoint's anonymous memory from 22.3 to 15.4 MiB (bench/RESULTS.md).
// Before any thread exists. The client threads are few and allocate little once connected, so
// one arena costs no measurable contention.
void tune_malloc() {
  ::mallopt(M_ARENA_MAX, 1);
  ::mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  ::mallopt(M_TRIM_THRESHOLD, 64 * 1024);
}

}  // namespace

int main(int argc, char** argv) {
  tune_malloc();
  appvirt::rdp::RdpOptions options;
  if (auto code = appvirt::rdp::parse_options(argc, argv, options)) return *code;
  return appvirt::rdp::run_endpoint(options);
}
