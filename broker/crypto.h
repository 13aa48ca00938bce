#pragma once
// Secrets the broker hands out (session cookies, CSRF tokens, launch tokens) and how it keeps and
// compares them: random bytes from OpenSSL's CSPRNG, stored only as SHA-256 digests, compared in
// constant time so response timing tells an attacker nothing about how much of a guess matched.
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"

namespace appvirt::broker {

// `bytes` random bytes (RAND_bytes) as unpadded base64url: [A-Za-z0-9_-], safe in cookies,
// headers, JSON and the RDP routing-token line.
Result<std::string> random_token(std::size_t bytes = 32);

// Lowercase hex SHA-256 of data: how tokens are stored.
std::string sha256_hex(std::string_view data);

// Equality that takes the same time for every pair of equally long inputs (CRYPTO_memcmp).
bool constant_time_equal(std::string_view a, std::string_view b);

// True when s looks like a token random_token produced (charset and a sane length), so a
// malformed value is rejected before it is hashed or looked up.
bool is_token_syntax(std::string_view s);

}  // namespace appvirt::broker
