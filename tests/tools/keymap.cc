#include "tests/tools/keymap.h"

#include <cstring>
#include <string>

namespace appvirt::probe {

namespace {

// Each row of the keyboard: the unshifted and shifted characters, starting at a scancode.
struct KeyRow {
  uint8_t first_scancode;
  const char* plain;
  const char* shifted;
};

constexpr KeyRow kRows[] = {
    {0x02, "1234567890-=", "!@#$%^&*()_+"},
    {0x10, "qwertyuiop[]", "QWERTYUIOP{}"},
    {0x1e, "asdfghjkl;'`", "ASDFGHJKL:\"~"},
    {0x2b, "\\zxcvbnm,./", "|ZXCVBNM<>?"},
};

}  // namespace

std::optional<KeyStroke> ascii_to_key(char c) {
  switch (c) {
    case ' ':
      return KeyStroke{0x39, false};
    case '\n':
      return KeyStroke{0x1c, false};
    case '\t':
      return KeyStroke{0x0f, false};
    case '\b':
      return KeyStroke{0x0e, false};
    default:
      break;
  }
  if (c == '\0') return std::nullopt;
  for (const KeyRow& row : kRows) {
    if (const char* p = std::strchr(row.plain, c)) {
      return KeyStroke{static_cast<uint8_t>(row.first_scancode + (p - row.plain)), false};
    }
    if (const char* p = std::strchr(row.shifted, c)) {
      return KeyStroke{static_cast<uint8_t>(row.first_scancode + (p - row.shifted)), true};
    }
  }
  return std::nullopt;
}

}  // namespace appvirt::probe

namespace appvirt::probe {

namespace {

// Decodes one UTF-8 sequence at text[*i]; returns the code point or -1 when malformed.
long next_code_point(std::string_view text, size_t* i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char b0 = byte(*i);
  int extra = -1;
  if (b0 < 0x80) {
    extra = 0;
  } else if ((b0 >> 5) == 0x6) {
    extra = 1;
  } else if ((b0 >> 4) == 0xe) {
    extra = 2;
  } else if ((b0 >> 3) == 0x1e) {
    extra = 3;
  }
  if (extra < 0 || *i + extra >= text.size()) return -1;
  long cp = extra == 0 ? b0 : b0 & (0x3f >> extra);
  for (int k = 1; k <= extra; ++k) {
    unsigned char b = byte(*i + k);
    if ((b & 0xc0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3f);
  }
  *i += 1 + extra;
  return cp;
}

}  // namespace

Result<std::vector<TypedKey>> plan_typing(std::string_view utf8, bool unicode) {
  std::vector<TypedKey> keys;
  for (size_t i = 0; i < utf8.size();) {
    size_t at = i;
    long cp = next_code_point(utf8, &i);
    if (cp < 0) return fail("--type-text: invalid UTF-8 at byte " + std::to_string(at));
    if (unicode) {
      if (cp > 0xffff)
        return fail("--type-text: character beyond U+FFFF at byte " + std::to_string(at));
      keys.push_back(TypedKey{true, static_cast<uint16_t>(cp), false});
      continue;
    }
    auto k = cp < 0x80 ? ascii_to_key(static_cast<char>(cp)) : std::nullopt;
    if (!k) {
      return fail("--type-text: no US-layout scancode for the character at byte " +
                  std::to_string(at) + " (use --type-unicode)");
    }
    keys.push_back(TypedKey{false, k->scancode, k->shift});
  }
  return keys;
}

}  // namespace appvirt::probe
