#include "tests/tools/frame.h"

#include <png.h>

#include <cstring>

#include "tests/tools/pattern.h"

namespace appvirt::probe {

Frame frame_from_bgrx(const uint8_t* data, int width, int height, int stride) {
  Frame f;
  f.width = width;
  f.height = height;
  f.pixels.resize(static_cast<size_t>(width) * height);
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = data + static_cast<size_t>(y) * stride;
    uint32_t* out = &f.pixels[static_cast<size_t>(y) * width];
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = row + 4 * x;
      out[x] = (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
    }
  }
  return f;
}

namespace {

template <class Want>
CompareResult compare_with(const Frame& frame, Want want) {
  CompareResult r;
  for (int y = 0; y < frame.height; ++y) {
    for (int x = 0; x < frame.width; ++x) {
      uint32_t got = frame.at(x, y);
      uint32_t w = want(x, y);
      if (got == w) continue;
      if (r.mismatched_pixels++ == 0) r.first = Mismatch{x, y, got, w};
    }
  }
  return r;
}

}  // namespace

CompareResult compare_to_pattern(const Frame& frame, int variant) {
  return compare_with(
      frame, [variant](int x, int y) { return testpattern::pattern_pixel(x, y, variant); });
}

CompareResult compare_frames(const Frame& frame, const Frame& reference) {
  if (frame.width != reference.width || frame.height != reference.height) {
    CompareResult r;
    r.size_mismatch = true;
    r.mismatched_pixels = static_cast<uint64_t>(frame.width) * frame.height;
    return r;
  }
  return compare_with(frame, [&reference](int x, int y) { return reference.at(x, y); });
}

Result<void> write_png(const Frame& frame, const std::string& path) {
  std::vector<uint8_t> rgb(frame.pixels.size() * 3);
  for (size_t i = 0; i < frame.pixels.size(); ++i) {
    rgb[3 * i] = static_cast<uint8_t>(frame.pixels[i] >> 16);
    rgb[3 * i + 1] = static_cast<uint8_t>(frame.pixels[i] >> 8);
    rgb[3 * i + 2] = static_cast<uint8_t>(frame.pixels[i]);
  }
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(frame.width);
  img.height = static_cast<png_uint_32>(frame.height);
  img.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&img, path.c_str(), 0, rgb.data(), 0, nullptr)) {
    std::string msg = "png_image_write_to_file(" + path + "): " + img.message;
    png_image_free(&img);
    return fail(msg);
  }
  return {};
}

Result<Frame> read_png(const std::string& path) {
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) {
    return fail("png_image_begin_read_from_file(" + path + "): " + img.message);
  }
  img.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, rgb.data(), 0, nullptr)) {
    std::string msg = "png_image_finish_read(" + path + "): " + img.message;
    png_image_free(&img);
    return fail(msg);
  }
  Frame f;
  f.width = static_cast<int>(img.width);
  f.height = static_cast<int>(img.height);
  f.pixels.resize(static_cast<size_t>(f.width) * f.height);
  for (size_t i = 0; i < f.pixels.size(); ++i) {
    f.pixels[i] = (uint32_t{rgb[3 * i]} << 16) | (uint32_t{rgb[3 * i + 1]} << 8) | rgb[3 * i + 2];
  }
  return f;
}

}  // namespace appvirt::probe
