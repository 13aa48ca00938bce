#include "session-host/rdp/damage_region.h"

#include <algorithm>
#include <limits>

namespace appvirt::rdp {

Rect bounding_box(const Rect& a, const Rect& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  const int x = std::min(a.x, b.x), y = std::min(a.y, b.y);
  return {x, y, std::max(a.right(), b.right()) - x, std::max(a.bottom(), b.bottom()) - y};
}

Rect intersect(const Rect& a, const Rect& b) {
  const int x = std::max(a.x, b.x), y = std::max(a.y, b.y);
  const int r = std::min(a.right(), b.right()), btm = std::min(a.bottom(), b.bottom());
  if (r <= x || btm <= y) return {};
  return {x, y, r - x, btm - y};
}

namespace {

// Pixels the bounding box of a and b grabs beyond what a and b cover (their overlap counted
// once). Never negative.
int64_t waste(const Rect& a, const Rect& b) {
  const int64_t covered = a.area() + b.area() - intersect(a, b).area();
  return bounding_box(a, b).area() - covered;
}

struct Pair {
  size_t i = 0;
  size_t j = 0;
  int64_t waste = std::numeric_limits<int64_t>::max();
};

Pair cheapest_pair(const std::vector<Rect>& rects) {
  Pair best;
  for (size_t i = 0; i < rects.size(); ++i) {
    for (size_t j = i + 1; j < rects.size(); ++j) {
      const int64_t w = waste(rects[i], rects[j]);
      if (w < best.waste) best = {i, j, w};
    }
  }
  return best;
}

void merge(std::vector<Rect>& rects, const Pair& p) {
  rects[p.i] = bounding_box(rects[p.i], rects[p.j]);
  rects.erase(rects.begin() + static_cast<std::ptrdiff_t>(p.j));
}

}  // namespace

std::vector<Rect> coalesce_damage(std::vector<Rect> damage, const Rect& screen, size_t max_rects,
                                  int64_t slack_px) {
  std::vector<Rect> rects;
  rects.reserve(damage.size());
  for (const Rect& r : damage) {
    Rect clipped = intersect(r, screen);
    if (!clipped.empty()) rects.push_back(clipped);
  }
  // XDamage can report hundreds of rectangles for one frame (a scrolled text view); the pairwise
  // search below is quadratic, so start from their bounding box when there are that many.
  constexpr size_t kTooMany = 256;
  if (rects.size() > kTooMany) {
    Rect all;
    for (const Rect& r : rects) all = bounding_box(all, r);
    return {all};
  }
  max_rects = std::max<size_t>(max_rects, 1);
  while (rects.size() > 1) {
    Pair p = cheapest_pair(rects);
    if (p.waste > slack_px && rects.size() <= max_rects) break;
    merge(rects, p);
  }
  return rects;
}

std::chrono::milliseconds FramePacer::wait_before_frame(Clock::time_point now) const {
  if (!sent_) return std::chrono::milliseconds(0);
  auto due = last_ + min_interval_;
  if (now >= due) return std::chrono::milliseconds(0);
  // Round up: waking a fraction of a millisecond early would only loop once more.
  return std::chrono::ceil<std::chrono::milliseconds>(due - now);
}

}  // namespace appvirt::rdp
