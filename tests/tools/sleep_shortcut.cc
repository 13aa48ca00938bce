#include "tests/tools/sleep_shortcut.h"

#include <time.h>
#include <winpr/synch.h>

#include <atomic>
#include <cerrno>
#include <chrono>

#include "tests/tools/byte_relay.h"

namespace appvirt::probe {
namespace {

thread_local SleepShortcut* current = nullptr;
std::atomic<uint64_t> sleeps{0};
std::atomic<uint64_t> shortcuts{0};

void plain_sleep(uint32_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

SleepShortcut::SleepShortcut(ByteRelay* relay) : relay_(relay), previous_(current) {
  // Everything delivered before now was there before FreeRDP's first read.
  relay_->wait_for_delivery(&seen_, std::chrono::milliseconds(0));
  current = this;
}

SleepShortcut::~SleepShortcut() { current = previous_; }

void SleepShortcut::sleep(uint32_t ms) {
  auto start = std::chrono::steady_clock::now();
  relay_->wait_for_delivery(&seen_, std::chrono::milliseconds(ms));
  if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(ms)) ++shortcuts;
}

uint64_t SleepShortcut::shortcut_count() { return shortcuts.load(); }
uint64_t SleepShortcut::sleep_count() { return sleeps.load(); }

}  // namespace appvirt::probe

// Interposes winpr's Sleep (winpr/libwinpr/synch/sleep.c: usleep(ms * 1000)); see the header.
extern "C" VOID Sleep(DWORD dwMilliseconds) {
  using appvirt::probe::current;
  ++appvirt::probe::sleeps;
  if (current) {
    current->sleep(dwMilliseconds);
  } else {
    appvirt::probe::plain_sleep(dwMilliseconds);
  }
}
