// appvirt-testpattern: a tiny X11 app that covers the whole screen with the test pattern of
// pattern.h, so an RDP client can prove that exact pixels travelled. It runs inside the user's
// container, so it links only libX11 and libc and starts in a few milliseconds.
//
//   appvirt-testpattern [--variant N] [--title T] [--keys-advance] [--ready-fd FD]
//
// SIGUSR1 advances the variant by one and repaints (a test can check that a changed frame
// arrives); with --keys-advance every key press does the same (a typing benchmark can wait for
// the frame that follows a key). SIGTERM/SIGINT end it cleanly.
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tests/tools/pattern.h"

namespace {

struct Options {
  int variant = 0;
  const char* title = "appvirt-testpattern";
  bool keys_advance = false;
  int ready_fd = -1;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: appvirt-testpattern [--variant N] [--title T] [--keys-advance] "
               "[--ready-fd FD]\n"
               "Covers the whole X screen ($DISPLAY) with the deterministic test pattern.\n"
               "  --variant N     pattern variant to draw (default 0)\n"
               "  --title T       window title (WM_NAME)\n"
               "  --keys-advance  every key press advances the variant by one\n"
               "  --ready-fd FD   write \"ready\\n\" to FD after the first paint, then close it\n"
               "SIGUSR1 advances the variant by one; SIGTERM/SIGINT exit.\n");
}

bool parse_int(const char* s, int* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1000000) return false;
  *out = static_cast<int>(v);
  return true;
}

// Returns 0 to continue, 1 for --help, -1 on a usage error.
int parse_options(int argc, char** argv, Options* opt) {
  static const option kLong[] = {
      {"variant", required_argument, nullptr, 'v'}, {"title", required_argument, nullptr, 't'},
      {"keys-advance", no_argument, nullptr, 'k'},  {"ready-fd", required_argument, nullptr, 'r'},
      {"help", no_argument, nullptr, 'h'},          {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
    switch (c) {
      case 'v':
        if (!parse_int(optarg, &opt->variant)) return -1;
        break;
      case 't':
        opt->title = optarg;
        break;
      case 'k':
        opt->keys_advance = true;
        break;
      case 'r':
        if (!parse_int(optarg, &opt->ready_fd)) return -1;
        break;
      case 'h':
        return 1;
      default:
        return -1;
    }
  }
  return optind == argc ? 0 : -1;
}

// The image in the server's native 32-bit layout, filled with one variant of the pattern.
struct Canvas {
  XImage* image = nullptr;
  int width = 0;
  int height = 0;
};

bool create_canvas(Display* dpy, Visual* visual, int depth, int w, int h, Canvas* canvas) {
  char* data = static_cast<char*>(std::malloc(static_cast<size_t>(w) * h * 4));
  if (!data) return false;
  XImage* img = XCreateImage(dpy, visual, depth, ZPixmap, 0, data, w, h, 32, 0);
  if (!img) {
    std::free(data);
    return false;
  }
  canvas->image = img;
  canvas->width = w;
  canvas->height = h;
  return true;
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  return *reinterpret_cast<const uint8_t*>(&one) == 1;
}

void fill_canvas(Canvas* canvas, int variant) {
  XImage* img = canvas->image;
  // With the server's byte order equal to ours, write pixels directly: XPutPixel per pixel is
  // several times slower, which matters for a 4K screen.
  bool direct = img->byte_order == (host_is_little_endian() ? LSBFirst : MSBFirst);
  for (int y = 0; y < canvas->height; ++y) {
    auto* row =
        reinterpret_cast<uint32_t*>(img->data + static_cast<size_t>(y) * img->bytes_per_line);
    for (int x = 0; x < canvas->width; ++x) {
      uint32_t p = appvirt::testpattern::pattern_pixel(x, y, variant);
      if (direct) {
        row[x] = p;
      } else {
        XPutPixel(img, x, y, p);
      }
    }
  }
}

// The pattern is drawn as 0x00RRGGBB words, so only a TrueColor visual with 8-bit channels in
// that order and 32 bits per pixel can take it unchanged.
bool visual_fits(Display* dpy, int screen) {
  Visual* v = DefaultVisual(dpy, screen);
  int depth = DefaultDepth(dpy, screen);
  if (v->c_class != TrueColor || (depth != 24 && depth != 32)) return false;
  if (v->red_mask != 0xff0000 || v->green_mask != 0xff00 || v->blue_mask != 0xff) return false;
  int count = 0;
  XPixmapFormatValues* formats = XListPixmapFormats(dpy, &count);
  bool ok = false;
  for (int i = 0; i < count; ++i) {
    if (formats[i].depth == depth) ok = formats[i].bits_per_pixel == 32;
  }
  XFree(formats);
  return ok;
}

Window create_window(Display* dpy, int screen, const Options& opt) {
  XSetWindowAttributes attrs;
  std::memset(&attrs, 0, sizeof(attrs));
  attrs.override_redirect = True;  // no window manager decides placement or size
  attrs.background_pixmap = None;  // no flash of background before the first paint
  attrs.event_mask = ExposureMask | KeyPressMask | StructureNotifyMask;
  Window win = XCreateWindow(dpy, RootWindow(dpy, screen), 0, 0, DisplayWidth(dpy, screen),
                             DisplayHeight(dpy, screen), 0, DefaultDepth(dpy, screen), InputOutput,
                             DefaultVisual(dpy, screen),
                             CWOverrideRedirect | CWBackPixmap | CWEventMask, &attrs);
  XStoreName(dpy, win, opt.title);
  XMapRaised(dpy, win);
  return win;
}

void paint(Display* dpy, Window win, GC gc, const Canvas& canvas, int x, int y, int w, int h) {
  XPutImage(dpy, win, gc, canvas.image, x, y, x, y, static_cast<unsigned>(w),
            static_cast<unsigned>(h));
}

void signal_ready(int* ready_fd) {
  if (*ready_fd < 0) return;
  ssize_t n = write(*ready_fd, "ready\n", 6);
  (void)n;  // the reader may be gone; the app keeps running either way
  close(*ready_fd);
  *ready_fd = -1;
}

struct App {
  Display* dpy;
  Window win;
  GC gc;
  Canvas canvas;
  Options opt;
};

void advance_variant(App* app) {
  ++app->opt.variant;
  fill_canvas(&app->canvas, app->opt.variant);
  paint(app->dpy, app->win, app->gc, app->canvas, 0, 0, app->canvas.width, app->canvas.height);
  XFlush(app->dpy);
}

void handle_x_event(App* app, const XEvent& ev) {
  if (ev.type == Expose) {
    const XExposeEvent& e = ev.xexpose;
    paint(app->dpy, app->win, app->gc, app->canvas, e.x, e.y, e.width, e.height);
    if (e.count == 0) {
      // Ready means "the pattern is on the screen", so wait until the server has done the paint.
      XSync(app->dpy, False);
      signal_ready(&app->opt.ready_fd);
    }
  } else if (ev.type == MapNotify) {
    XSetInputFocus(app->dpy, app->win, RevertToPointerRoot, CurrentTime);
  } else if (ev.type == KeyPress && app->opt.keys_advance) {
    advance_variant(app);
  }
}

// Returns the exit code. Waits on the X connection and the signalfd together.
int run_loop(App* app, int sig_fd) {
  int x_fd = ConnectionNumber(app->dpy);
  for (;;) {
    while (XPending(app->dpy) > 0) {
      XEvent ev;
      XNextEvent(app->dpy, &ev);
      handle_x_event(app, ev);
    }
    pollfd fds[2] = {{x_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("appvirt-testpattern: poll");
      return 1;
    }
    if (fds[0].revents & (POLLERR | POLLHUP)) return 1;  // X server went away
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      if (read(sig_fd, &si, sizeof(si)) != static_cast<ssize_t>(sizeof(si))) continue;
      if (si.ssi_signo == SIGUSR1) {
        advance_variant(app);
      } else {
        return 0;
      }
    }
  }
}

int make_signal_fd() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return -1;
  return signalfd(-1, &set, SFD_CLOEXEC);
}

}  // namespace

int main(int argc, char** argv) {
  App app{};
  int rc = parse_options(argc, argv, &app.opt);
  if (rc != 0) {
    usage(rc > 0 ? stdout : stderr);
    return rc > 0 ? 0 : 2;
  }
  int sig_fd = make_signal_fd();
  if (sig_fd < 0) {
    std::perror("appvirt-testpattern: signalfd");
    return 1;
  }
  app.dpy = XOpenDisplay(nullptr);
  if (!app.dpy) {
    std::fprintf(stderr, "appvirt-testpattern: cannot open display '%s'\n", XDisplayName(nullptr));
    return 1;
  }
  int screen = DefaultScreen(app.dpy);
  if (!visual_fits(app.dpy, screen)) {
    std::fprintf(stderr, "appvirt-testpattern: need a 24-bit TrueColor visual (0xRRGGBB)\n");
    return 1;
  }
  int w = DisplayWidth(app.dpy, screen);
  int h = DisplayHeight(app.dpy, screen);
  if (!create_canvas(app.dpy, DefaultVisual(app.dpy, screen), DefaultDepth(app.dpy, screen), w, h,
                     &app.canvas)) {
    std::fprintf(stderr, "appvirt-testpattern: cannot allocate a %dx%d image\n", w, h);
    return 1;
  }
  fill_canvas(&app.canvas, app.opt.variant);
  app.win = create_window(app.dpy, screen, app.opt);
  app.gc = XCreateGC(app.dpy, app.win, 0, nullptr);
  rc = run_loop(&app, sig_fd);
  XDestroyImage(app.canvas.image);  // frees the pixel data too
  XFreeGC(app.dpy, app.gc);
  XCloseDisplay(app.dpy);
  return rc;
}
