#pragma once
// Self-signed server certificates for hosts that have no certificate from a CA yet (the session
// endpoints' RDP TLS, internal APIs in a fresh install).
#include <filesystem>
#include <string>

#include "common/result.h"

namespace appvirt {

// Keeps cert_path/key_path when both exist, parse as PEM, the key is RSA and belongs to the
// certificate;
// otherwise generates a new pair: RSA 2048 (FreeRDP 2.11's server also loads the TLS key as the
// RDP Standard Security RSA key, so EC keys break it), SHA-256, subjectAltName = common_name
// (as an IP address when it parses as one, else a DNS name), valid `days` days. The key is
// written 0600 and both files are replaced atomically (temp file + fsync + rename).
Result<void> ensure_self_signed_cert(const std::filesystem::path& cert_path,
                                     const std::filesystem::path& key_path,
                                     const std::string& common_name, int days);

// Checks that cert_pem and key_pem parse and belong together; with require_rsa, that the key is
// RSA (FreeRDP 2.11 servers need that). The error says what is wrong, never the key.
Result<void> check_cert_key_pair(const std::string& cert_pem, const std::string& key_pem,
                                 bool require_rsa);

// Reads a whole file (certificates, keys, secrets) with a size bound, so a wrong path to a huge
// file fails instead of eating memory.
Result<std::string> read_small_file(const std::filesystem::path& path, size_t max_bytes = 1 << 20);

}  // namespace appvirt
