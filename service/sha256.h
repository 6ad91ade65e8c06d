// service/sha256.h: SHA-256 (FIPS 180-4) of a byte string, for the server's result cache keys.
// Computed with OpenSSL's libcrypto (Debian libssl-dev, already required by cpp-httplib's header);
// tests/server checks it against the FIPS 180-4 / NIST CAVP example vectors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace m2fp::service {

std::array<uint8_t, 32> sha256(const void* data, size_t size);
// Lower-case hex, 64 characters.
std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& s) { return sha256_hex(s.data(), s.size()); }

}  // namespace m2fp::service
