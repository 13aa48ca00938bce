// The pure parts of the damage-driven capture: which rectangles one frame grabs, and pacing.
#include "session-host/rdp/damage_region.h"

#include <gtest/gtest.h>

#include <set>

namespace appvirt::rdp {
namespace {

using namespace std::chrono_literals;

const Rect kScreen{0, 0, 1024, 768};

// Every pixel of `damage` (clipped to the screen) lies in some rectangle of `grabbed`.
bool covers(const std::vector<Rect>& grabbed, const std::vector<Rect>& damage) {
  for (const Rect& d : damage) {
    Rect c = intersect(d, kScreen);
    for (int y = c.y; y < c.bottom(); ++y) {
      for (int x = c.x; x < c.right(); ++x) {
        bool in = false;
        for (const Rect& g : grabbed)
          in = in || (x >= g.x && x < g.right() && y >= g.y && y < g.bottom());
        if (!in) return false;
      }
    }
  }
  return true;
}

TEST(DamageRegion, IntersectAndBoundingBox) {
  EXPECT_EQ(intersect({0, 0, 10, 10}, {5, 5, 10, 10}), (Rect{5, 5, 5, 5}));
  EXPECT_TRUE(intersect({0, 0, 10, 10}, {10, 0, 5, 5}).empty());  // touching edges share nothing
  EXPECT_EQ(bounding_box({0, 0, 2, 2}, {8, 9, 2, 1}), (Rect{0, 0, 10, 10}));
  EXPECT_EQ(bounding_box({}, {3, 4, 5, 6}), (Rect{3, 4, 5, 6}));
}

TEST(DamageRegion, NothingDamagedGrabsNothing) {
  EXPECT_TRUE(coalesce_damage({}, kScreen).empty());
  EXPECT_TRUE(coalesce_damage({{0, 0, 0, 5}, {2000, 2000, 10, 10}}, kScreen).empty());
}

TEST(DamageRegion, ClipsToTheScreen) {
  auto r = coalesce_damage({{1000, 760, 100, 100}, {-5, -5, 10, 10}}, kScreen);
  ASSERT_EQ(r.size(), 2u);
  std::set<std::pair<int, int>> origins;
  for (const Rect& x : r) {
    EXPECT_GE(x.x, 0);
    EXPECT_GE(x.y, 0);
    EXPECT_LE(x.right(), 1024);
    EXPECT_LE(x.bottom(), 768);
    origins.insert({x.x, x.y});
  }
  EXPECT_TRUE(origins.count({1000, 760}));
  EXPECT_TRUE(origins.count({0, 0}));
}

TEST(DamageRegion, NeighbouringGlyphsMergeDistantChangesStayApart) {
  // A typed character and the text cursor next to it: one grab.
  auto near = coalesce_damage({{100, 200, 8, 16}, {108, 200, 8, 16}}, kScreen);
  ASSERT_EQ(near.size(), 1u);
  EXPECT_EQ(near[0], (Rect{100, 200, 16, 16}));
  // A glyph top left and a clock bottom right: merging would grab the whole screen.
  std::vector<Rect> far_apart{{0, 0, 8, 16}, {980, 750, 40, 16}};
  auto far = coalesce_damage(far_apart, kScreen);
  EXPECT_EQ(far.size(), 2u);
  EXPECT_TRUE(covers(far, far_apart));
}

TEST(DamageRegion, AtMostMaxRectsAndStillCoversEverything) {
  std::vector<Rect> scattered;
  for (int i = 0; i < 40; ++i) scattered.push_back({(i * 97) % 1000, (i * 53) % 740, 12, 20});
  auto r = coalesce_damage(scattered, kScreen, 8, 0);
  EXPECT_LE(r.size(), 8u);
  EXPECT_GE(r.size(), 1u);
  EXPECT_TRUE(covers(r, scattered));
  // Far more rectangles than the pairwise search handles: one bounding box of them all.
  std::vector<Rect> many;
  for (int i = 0; i < 300; ++i) many.push_back({i, i * 2, 1, 1});
  auto one = coalesce_damage(many, kScreen);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], (Rect{0, 0, 300, 599}));
}

TEST(DamageRegion, OverlappingRectanglesMergeWithoutWaste) {
  auto r = coalesce_damage({{10, 10, 100, 100}, {50, 50, 20, 20}}, kScreen, 8, 0);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], (Rect{10, 10, 100, 100}));
}

TEST(FramePacer, FirstFrameAtOnceThenAtMostOnePerInterval) {
  FramePacer pacer(33ms);
  const auto t0 = FramePacer::Clock::time_point{} + 10s;
  EXPECT_EQ(pacer.wait_before_frame(t0).count(), 0);
  pacer.frame_sent(t0);
  EXPECT_EQ(pacer.wait_before_frame(t0).count(), 33);
  EXPECT_EQ(pacer.wait_before_frame(t0 + 10ms).count(), 23);
  EXPECT_EQ(pacer.wait_before_frame(t0 + 32ms + 500us).count(), 1);  // rounded up, never early
  EXPECT_EQ(pacer.wait_before_frame(t0 + 33ms).count(), 0);
  EXPECT_EQ(pacer.wait_before_frame(t0 + 5s).count(), 0);
}

}  // namespace
}  // namespace appvirt::rdp
