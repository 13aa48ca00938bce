#include "tests/e2e/screen.h"

#include <X11/Xlib.h>
#include <X11/Xutil.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <thread>

#include "tests/tools/pattern.h"

namespace appvirt::e2e {

namespace {

using Clock = std::chrono::steady_clock;

// Xlib's default error handler exits the process; a failed request must only fail the grab.
int ignore_x_error(Display*, XErrorEvent*) { return 0; }

struct DisplayCloser {
  void operator()(Display* d) const { XCloseDisplay(d); }
};
struct ImageDestroyer {
  void operator()(XImage* i) const { XDestroyImage(i); }
};

// Xlib takes the cookie file from the environment when it connects.
std::unique_ptr<Display, DisplayCloser> open_display(const std::string& display,
                                                     const std::string& xauthority) {
  const char* old = std::getenv("XAUTHORITY");
  std::string saved = old ? old : "";
  ::setenv("XAUTHORITY", xauthority.c_str(), 1);
  std::unique_ptr<Display, DisplayCloser> d(XOpenDisplay(display.c_str()));
  if (old) {
    ::setenv("XAUTHORITY", saved.c_str(), 1);
  } else {
    ::unsetenv("XAUTHORITY");
  }
  return d;
}

bool near(uint32_t got, uint32_t want, int tolerance) {
  for (int shift = 0; shift < 24; shift += 8) {
    int a = static_cast<int>((got >> shift) & 0xff);
    int b = static_cast<int>((want >> shift) & 0xff);
    if (std::abs(a - b) > tolerance) return false;
  }
  return true;
}

// The corner marker's rings (white, red, green from the outside in), sampled inside each ring.
bool marker_at(const Screenshot& s, int x, int y) {
  if (x + testpattern::kMarker > s.width || y + testpattern::kMarker > s.height) return false;
  static constexpr struct {
    int dx, dy;
  } kProbes[] = {{1, 1}, {12, 1}, {22, 22}, {5, 5}, {12, 5}, {18, 18}, {9, 9}, {12, 10}, {14, 14}};
  for (const auto& p : kProbes) {
    if (!near(s.at(x + p.dx, y + p.dy), testpattern::marker_pixel(p.dx, p.dy), 60)) return false;
  }
  return true;
}

}  // namespace

Result<Screenshot> grab_screen(const std::string& display, const std::string& xauthority) {
  auto d = open_display(display, xauthority);
  if (!d) return fail("XOpenDisplay(" + display + ") failed");
  XSetErrorHandler(ignore_x_error);
  Window root = DefaultRootWindow(d.get());
  XWindowAttributes attrs{};
  if (!XGetWindowAttributes(d.get(), root, &attrs)) return fail("XGetWindowAttributes(root)");
  std::unique_ptr<XImage, ImageDestroyer> img(
      XGetImage(d.get(), root, 0, 0, attrs.width, attrs.height, AllPlanes, ZPixmap));
  if (!img) return fail("XGetImage(root) failed on " + display);
  Screenshot s;
  s.width = attrs.width;
  s.height = attrs.height;
  s.pixels.resize(static_cast<size_t>(s.width) * s.height);
  for (int y = 0; y < s.height; ++y) {
    for (int x = 0; x < s.width; ++x) {
      s.pixels[static_cast<size_t>(y) * s.width + x] =
          static_cast<uint32_t>(XGetPixel(img.get(), x, y)) & 0xffffffU;
    }
  }
  return s;
}

std::string PatternMatch::str() const {
  std::ostringstream o;
  o << "marker_found=" << marker_found << " at=" << x << "," << y
    << " blocks_matching=" << blocks_matching << "/" << blocks_checked;
  return o.str();
}

PatternMatch find_pattern(const Screenshot& shot, int variant, int session_width,
                          int session_height) {
  PatternMatch m;
  for (int y = 0; y + testpattern::kMarker <= shot.height && !m.marker_found; ++y) {
    for (int x = 0; x + testpattern::kMarker <= shot.width; ++x) {
      if (marker_at(shot, x, y)) {
        m.marker_found = true;
        m.x = x;
        m.y = y;
        break;
      }
    }
  }
  if (!m.marker_found) return m;
  const int w = std::min(session_width, shot.width - m.x);
  const int h = std::min(session_height, shot.height - m.y);
  using testpattern::kBlock;
  for (int by = 0; (by + 1) * kBlock <= h; ++by) {
    for (int bx = 0; (bx + 1) * kBlock <= w; ++bx) {
      if (bx == 0 && by == 0) continue;  // the marker
      // (16, 8) inside a block: off the grid and off the diagonal, far from the edges.
      int px = bx * kBlock + 16;
      int py = by * kBlock + 8;
      ++m.blocks_checked;
      if (near(shot.at(m.x + px, m.y + py), testpattern::pattern_pixel(px, py, variant), 40)) {
        ++m.blocks_matching;
      }
    }
  }
  return m;
}

PatternMatch wait_for_pattern(const std::string& display, const std::string& xauthority,
                              int variant, int session_width, int session_height,
                              std::chrono::milliseconds timeout) {
  auto end = Clock::now() + timeout;
  PatternMatch last;
  for (;;) {
    auto shot = grab_screen(display, xauthority);
    if (shot) last = find_pattern(*shot, variant, session_width, session_height);
    if (last.visible() || Clock::now() >= end) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace appvirt::e2e
