#pragma once
// Pure logic of the damage-driven capture (no X, no FreeRDP), unit-tested on its own:
// turning the rectangles XDamage reports into a few grab rectangles, and pacing frames.
#include <chrono>
#include <cstdint>
#include <vector>

namespace appvirt::rdp {

struct Rect {
  int x = 0;
  int y = 0;
  int w = 0;
  int h = 0;

  bool empty() const { return w <= 0 || h <= 0; }
  int64_t area() const { return empty() ? 0 : int64_t{w} * h; }
  int right() const { return x + w; }
  int bottom() const { return y + h; }
  friend bool operator==(const Rect&, const Rect&) = default;
};

Rect bounding_box(const Rect& a, const Rect& b);
Rect intersect(const Rect& a, const Rect& b);

// The rectangles to grab for one frame: `damage` clipped to `screen`, empty ones dropped, and
// merged so that at most `max_rects` remain. Two rectangles are merged when their bounding box
// grabs at most `slack_px` pixels that neither covers (one round trip for a few extra pixels is
// cheaper than two), then, while more than `max_rects` remain, the pair whose bounding box
// wastes the fewest pixels. The result covers every damaged pixel; rectangles may overlap.
std::vector<Rect> coalesce_damage(std::vector<Rect> damage, const Rect& screen,
                                  size_t max_rects = 8, int64_t slack_px = 4096);

// At most one frame per `min_interval`: damage that arrives sooner waits for the next slot and
// is merged into that frame. Time is passed in, so tests need no clock.
class FramePacer {
 public:
  using Clock = std::chrono::steady_clock;
  explicit FramePacer(std::chrono::milliseconds min_interval) : min_interval_(min_interval) {}
  // Zero when a frame may be sent now, else how long to wait.
  std::chrono::milliseconds wait_before_frame(Clock::time_point now) const;
  void frame_sent(Clock::time_point now) {
    last_ = now;
    sent_ = true;
  }

 private:
  std::chrono::milliseconds min_interval_;
  Clock::time_point last_{};
  bool sent_ = false;
};

}  // namespace appvirt::rdp
