// service/sha256.cpp: SHA-256 through OpenSSL's one-shot EVP_Digest.
#include "service/sha256.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace m2fp::service {

std::array<uint8_t, 32> sha256(const void* data, size_t size) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(data, size, out.data(), &len, EVP_sha256(), nullptr) != 1 || len != out.size())
    throw std::runtime_error("sha256: OpenSSL EVP_Digest failed");
  return out;
}

std::string sha256_hex(const void* data, size_t size) {
  static const char* const kHex = "0123456789abcdef";
  const std::array<uint8_t, 32> d = sha256(data, size);
  std::string s(64, '0');
  for (size_t i = 0; i < d.size(); ++i) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

}  // namespace m2fp::service
