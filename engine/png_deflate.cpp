// engine/png_deflate.cpp: the zlib stream of PNG's filtered rows (see png_deflate.h). Deflate as
// RFC 1951 has it: tokens (literal bytes, and matches of 3..258 bytes at a distance), each block's
// literal/length and distance codes sent as code lengths, themselves Huffman-coded.
#include "engine/png_deflate.h"

#include <immintrin.h>
#include <libdeflate.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/buffer_pool.h"

namespace m2fp {
namespace {

constexpr size_t kPieceBytes = size_t{4} << 20;  // the input encoded side by side in pieces this long
constexpr size_t kBlockBytes = size_t{256} << 10;  // a block's input (a match may carry it up to 257 further)
constexpr int kMaxMatch = 258;

// ---- the fixed tables of RFC 1951 3.2.5 ------------------------------------------------------------

constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
// The order the code length code's lengths are sent in.
constexpr uint8_t kCodeLengthOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

// Per match length 3..258: its symbol (257..285), extra bits and their value.
struct LengthCode {
  uint16_t symbol;
  uint8_t extra_bits;
  uint8_t extra;
};
const std::array<LengthCode, kMaxMatch + 1>& length_codes() {
  static const std::array<LengthCode, kMaxMatch + 1> t = [] {
    std::array<LengthCode, kMaxMatch + 1> a{};
    for (int len = 3; len <= kMaxMatch; ++len) {
      int c = 28;
      while (kLengthBase[c] > len) --c;
      a[(size_t)len] = {(uint16_t)(257 + c), kLengthExtra[c], (uint8_t)(len - kLengthBase[c])};
    }
    return a;
  }();
  return t;
}

// ---- Huffman codes ------------------------------------------------------------------------------

// Code lengths (at most max_bits) of a Huffman code for freq[0, n), 0 for unused symbols. At least two
// symbols get a code (deflate's decoders want a complete code): with fewer used, symbols 0 and 1 are
// taken as used too.
void huffman_lengths(const uint32_t* freq_in, int n, int max_bits, uint8_t* len) {
  std::vector<uint32_t> freq(freq_in, freq_in + n);
  int used = 0;
  for (int s = 0; s < n; ++s) used += freq[(size_t)s] != 0;
  for (int s = 0; used < 2 && s < n; ++s)
    if (!freq[(size_t)s]) freq[(size_t)s] = 1, ++used;
  std::vector<std::pair<uint32_t, int>> sym;  // (frequency, symbol), ascending
  for (int s = 0; s < n; ++s)
    if (freq[(size_t)s]) sym.push_back({freq[(size_t)s], s});
  std::sort(sym.begin(), sym.end());
  const int m = (int)sym.size();
  // The tree by the two-queue method: leaves 0..m-1 (ascending), internal nodes m..2m-2 made in
  // ascending order; parent[] of each node, then depths from the root down.
  std::vector<uint64_t> w((size_t)2 * m - 1);
  std::vector<int> parent((size_t)2 * m - 1, 0), depth((size_t)2 * m - 1, 0);
  for (int i = 0; i < m; ++i) w[(size_t)i] = sym[(size_t)i].first;
  int leaf = 0, inner = m;
  for (int next = m; next < 2 * m - 1; ++next) {
    int pick[2];
    for (int& p : pick) p = (leaf < m && (inner >= next || w[(size_t)leaf] <= w[(size_t)inner])) ? leaf++ : inner++;
    w[(size_t)next] = w[(size_t)pick[0]] + w[(size_t)pick[1]];
    parent[(size_t)pick[0]] = parent[(size_t)pick[1]] = next;
  }
  for (int i = 2 * m - 3; i >= 0; --i) depth[(size_t)i] = depth[(size_t)parent[(size_t)i]] + 1;
  // Lengths over max_bits: the count per length adjusted until the code is complete again (miniz's
  // way: one code of the longest length goes, one shorter code is split), then handed out again, the
  // shortest to the most frequent symbols.
  std::vector<int> count((size_t)std::max(2 * m, max_bits + 2), 0);
  for (int i = 0; i < m; ++i) ++count[(size_t)depth[(size_t)i]];
  for (size_t d = (size_t)max_bits + 1; d < count.size(); ++d) count[(size_t)max_bits] += count[d], count[d] = 0;
  uint64_t total = 0;
  for (int d = max_bits; d > 0; --d) total += (uint64_t)count[(size_t)d] << (max_bits - d);
  while (total != (uint64_t{1} << max_bits)) {
    --count[(size_t)max_bits];
    for (int d = max_bits - 1; d > 0; --d)
      if (count[(size_t)d]) {
        --count[(size_t)d];
        count[(size_t)d + 1] += 2;
        break;
      }
    --total;
  }
  std::fill(len, len + n, uint8_t{0});
  int j = m;
  for (int d = 1; d <= max_bits; ++d)
    for (int k = count[(size_t)d]; k > 0; --k) len[sym[(size_t)--j].second] = (uint8_t)d;
}

// Canonical codes (RFC 1951 3.2.2) of the lengths, bit-reversed: deflate sends them from their
// most significant bit on, into a stream written from each byte's least significant bit.
void canonical_codes(const uint8_t* len, int n, uint16_t* code) {
  int count[16] = {0};
  for (int s = 0; s < n; ++s) ++count[len[s]];
  count[0] = 0;
  int next[16] = {0};
  for (int b = 1, c = 0; b < 16; ++b) next[b] = c = (c + count[b - 1]) << 1;
  for (int s = 0; s < n; ++s) {
    const int l = len[s];
    if (!l) {
      code[s] = 0;
      continue;
    }
    unsigned c = (unsigned)next[l]++, r = 0;
    for (int b = 0; b < l; ++b) r = (r << 1) | ((c >> b) & 1);
    code[s] = (uint16_t)r;
  }
}

// ---- the bit stream -----------------------------------------------------------------------------

struct BitWriter {
  uint8_t* out;
  uint64_t buf = 0;
  int count = 0;
  explicit BitWriter(uint8_t* o) : out(o) {}
  void put(uint32_t bits, int n) {  // n <= 32
    buf |= (uint64_t)bits << count;
    count += n;
    if (count >= 32) {
      const uint32_t low = (uint32_t)buf;
      std::memcpy(out, &low, 4);
      out += 4;
      buf >>= 32;
      count -= 32;
    }
  }
  void align() {  // to the next byte, zero bits
    while (count > 0) {
      *out++ = (uint8_t)buf;
      buf >>= 8;
      count -= 8;
    }
    buf = 0;
    count = 0;
  }
  // Stored blocks of data[0, n) (each at most 65535 bytes); `last`: the final one is the stream's last.
  void stored(const uint8_t* data, size_t n, bool last) {
    do {
      const size_t k = std::min<size_t>(n, 65535);
      put(last && k == n ? 1 : 0, 1);
      put(0, 2);
      align();
      const uint8_t head[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)~k, (uint8_t)(~k >> 8)};
      std::memcpy(out, head, 4);
      if (k) std::memcpy(out + 4, data, k);
      out += 4 + k;
      data += k, n -= k;
    } while (n > 0);
  }
};

// Bits of stored blocks for n bytes (the alignment counted as 7 bits each: at most).
uint64_t stored_bits(size_t n) {
  const uint64_t blocks = std::max<uint64_t>(1, (n + 65534) / 65535);
  return blocks * (3 + 7 + 32) + (uint64_t)n * 8;
}

// ---- tokens -------------------------------------------------------------------------------------

// A token: a literal byte (0..255), or a match: 256 + 256 * (which distance: 0, 1, 2) + length - 3.
using Token = uint16_t;
constexpr int kTokens = 256 + 3 * 256;  // the token values

// Bytes from a and b that are equal, at most `limit`.
inline int match_length(const uint8_t* a, const uint8_t* b, int limit) {
  int k = 0;
  for (; k + 8 <= limit; k += 8) {
    uint64_t x, y;
    std::memcpy(&x, a + k, 8);
    std::memcpy(&y, b + k, 8);
    if (x != y) return k + (__builtin_ctzll(x ^ y) >> 3);
  }
  while (k < limit && a[k] == b[k]) ++k;
  return k;
}

struct Distances {
  size_t d[3];       // 1, bpp, stride (0: not used)
  int min_len[3];    // the shortest match worth its bits at each
  uint8_t symbol[3], extra_bits[3];
  uint16_t extra[3];
};

Distances distances_for(size_t bpp, size_t stride) {
  Distances t{};
  const size_t d[3] = {1, bpp >= 2 && bpp <= 32768 ? bpp : 0, stride >= 2 && stride <= 32768 && stride != bpp ? stride : 0};
  for (int i = 0; i < 3; ++i) {
    t.d[i] = d[i];
    if (!d[i]) continue;
    int c = 29;
    while (kDistBase[c] > d[i]) --c;
    t.symbol[i] = (uint8_t)c;
    t.extra_bits[i] = kDistExtra[c];
    t.extra[i] = (uint16_t)(d[i] - kDistBase[c]);
    // A far match costs its distance's extra bits: not worth it for a few bytes.
    t.min_len[i] = kDistExtra[c] >= 8 ? 8 : kDistExtra[c] >= 4 ? 5 : 3;
  }
  return t;
}

// The match at a position from each distance's count of equal bytes there, up to 8 (len8[j]): the
// longest worth taking (min_len); among several reaching 8 bytes the longest in full (full_length(j)),
// ties to the first distance. {0, 0}: none, a literal.
struct Match {
  int len, which;
};
template <class FullLength>
inline Match choose_match(const int len8[3], const int min_len[3], FullLength&& full_length) {
  int best = 0, which = 0;
  for (int j = 0; j < 3; ++j) {
    const int l = len8[j] >= min_len[j] ? len8[j] : 0;
    best = l > best ? l : best;
  }
  if (best == 8) {
    best = 0;
    for (int j = 0; j < 3; ++j) {
      if (len8[j] < 8 || min_len[j] > 8) continue;
      const int l = full_length(j);
      if (l > best) best = l, which = j;
    }
  } else if (best > 0) {
    for (int j = 0; j < 3; ++j)
      if (len8[j] == best && best >= min_len[j]) {
        which = j;
        break;
      }
  }
  return {best, which};
}

// Tokens of data[from, ...) into tok, from `from` until at least `to` (a match may run on up to
// `end`); returns where the block's input ends. Matches look back up to d[] bytes before `from` when
// the data is there (from >= d). With `windows`, 64 positions at a time from byte-equality masks
// (below); elsewhere, where 8 bytes can be read at every distance, the three candidates' first 8
// bytes are compared at once (one xor and count of trailing zeros each); both choose each match with
// choose_match, so they give the same tokens.
size_t tokenize(const uint8_t* data, size_t from, size_t to, size_t end, const Distances& dist, bool windows,
                Token* tok, size_t* ntok) {
  size_t d[3];
  int min_len[3];
  size_t dmax = 0;
  for (int j = 0; j < 3; ++j) {
    d[j] = dist.d[j] ? dist.d[j] : 1;
    min_len[j] = dist.d[j] ? dist.min_len[j] : 9;  // 9: never (the quick test sees at most 8)
    dmax = std::max(dmax, d[j]);
  }
  size_t i = from, k = 0;
  while (i < to) {
    if (windows && i >= dmax && i + 72 <= to) {
      // 64 positions at once (the same tokens as one at a time, below): eq[j] bit p = the byte at
      // i + p equals the one d[j] before it (two 32-byte compares), so a match worth taking at
      // distance j starts at p where min_len[j] bits from p are set. The positions before the first
      // start are literals, stored 16 at a time; at a start, each distance's run of equal bytes
      // from p is a count of trailing ones (no loads), past the window continued by match_length.
      // Decisions for p < 56 only, where 8 bits from p are in the window (the quick test's 8
      // bytes); the tokens written past the literals are written again later (i + 72 <= to: the
      // block's tokens have that room).
      const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i));
      const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i + 32));
      uint64_t starts = 0, eq[3] = {0, 0, 0};
      for (int j = 0; j < 3; ++j) {
        if (min_len[j] > 8) continue;
        const uint8_t* b = data + i - d[j];
        const uint64_t lo = (uint32_t)_mm256_movemask_epi8(
            _mm256_cmpeq_epi8(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b))));
        const uint64_t hi = (uint32_t)_mm256_movemask_epi8(
            _mm256_cmpeq_epi8(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32))));
        const uint64_t e = eq[j] = lo | hi << 32;
        uint64_t m = e;
        for (int t = 1; t < min_len[j]; ++t) m &= e >> t;
        starts |= m;
      }
      size_t p = 0;
      while (p < 56) {
        const uint64_t rest = starts >> p << p;
        const size_t q = std::min<size_t>(56, rest ? (size_t)__builtin_ctzll(rest) : 56);
        for (size_t x = p; x < q; x += 16) {  // literals [p, q)
          const __m256i t = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i + x)));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(tok + k + (x - p)), t);
        }
        k += q - p;
        p = q;
        if (p >= 56) break;
        int run[3], len8[3];
        for (int j = 0; j < 3; ++j) {
          const uint64_t r = ~(eq[j] >> p);
          run[j] = r ? __builtin_ctzll(r) : 64;
          len8[j] = std::min(run[j], 8);
        }
        const int in_window = (int)(64 - p);
        const Match m = choose_match(len8, min_len, [&](int j) {
          if (run[j] < in_window) return run[j];
          const int limit = (int)std::min<size_t>(kMaxMatch, end - (i + p));
          return in_window + match_length(data + i + 64, data + i + 64 - d[j], limit - in_window);
        });
        tok[k++] = (Token)(256 + 256 * m.which + m.len - 3);
        p += (size_t)m.len;
      }
      i += p;
      continue;
    }
    if (i >= dmax && i + 8 <= end) {
      uint64_t w;
      std::memcpy(&w, data + i, 8);
      int len8[3];
      for (int j = 0; j < 3; ++j) {
        uint64_t v;
        std::memcpy(&v, data + i - d[j], 8);
        const uint64_t x = w ^ v;
        len8[j] = x ? __builtin_ctzll(x) >> 3 : 8;
      }
      const Match m = choose_match(len8, min_len, [&](int j) {
        const int limit = (int)std::min<size_t>(kMaxMatch, end - i);
        return 8 + match_length(data + i + 8, data + i + 8 - d[j], limit - 8);
      });
      if (m.len == 0) {
        tok[k++] = data[i++];
        continue;
      }
      tok[k++] = (Token)(256 + 256 * m.which + m.len - 3);
      i += (size_t)m.len;
      continue;
    }
    const uint8_t c = data[i];
    const int limit = (int)std::min<size_t>(kMaxMatch, end - i);
    int best = 0, which = 0;
    if (limit >= 3) {
      for (int j = 0; j < 3; ++j) {
        const size_t dj = dist.d[j];
        if (!dj || dj > i || data[i - dj] != c) continue;
        const int len = match_length(data + i, data + i - dj, limit);
        if (len > best && len >= dist.min_len[j]) best = len, which = j;
        if (best == limit) break;
      }
    }
    if (best) {
      tok[k++] = (Token)(256 + 256 * which + best - 3);
      i += (size_t)best;
    } else {
      tok[k++] = c;
      ++i;
    }
  }
  *ntok = k;
  return i;
}

// One block of tokens (covering data[from, to)) written as a dynamic Huffman block, or as stored
// blocks when those are smaller.
void write_block(BitWriter& bw, const Token* tok, size_t ntok, const uint8_t* data, size_t from, size_t to,
                 const Distances& dist, bool last) {
  const auto& lc = length_codes();
  // How often each token occurs (two tables side by side: a run of one token would otherwise wait
  // for each count before it), then the symbols' frequencies from those: no branch per token.
  uint32_t tok_freq[2][kTokens] = {};
  size_t t = 0;
  for (; t + 2 <= ntok; t += 2) {
    ++tok_freq[0][tok[t]];
    ++tok_freq[1][tok[t + 1]];
  }
  if (t < ntok) ++tok_freq[0][tok[t]];
  uint32_t lit_freq[286] = {0}, dist_freq[30] = {0};
  uint64_t extra_bits = 0;
  for (int x = 0; x < 256; ++x) lit_freq[x] = tok_freq[0][x] + tok_freq[1][x];
  for (int x = 256; x < kTokens; ++x) {
    const uint32_t f = tok_freq[0][x] + tok_freq[1][x];
    if (!f) continue;
    const int which = (x - 256) >> 8, len = ((x - 256) & 255) + 3;
    lit_freq[lc[(size_t)len].symbol] += f;
    dist_freq[dist.symbol[which]] += f;
    extra_bits += (uint64_t)f * (lc[(size_t)len].extra_bits + dist.extra_bits[which]);
  }
  lit_freq[256] = 1;  // end of block
  uint8_t lit_len[286], dist_len[30];
  huffman_lengths(lit_freq, 286, 15, lit_len);
  huffman_lengths(dist_freq, 30, 15, dist_len);
  int hlit = 286, hdist = 30;
  while (hlit > 257 && !lit_len[hlit - 1]) --hlit;
  while (hdist > 1 && !dist_len[hdist - 1]) --hdist;

  // The code lengths, run-length coded (16: the previous one 3..6 times, 17: 3..10 zeros, 18: 11..138 zeros).
  uint8_t lens[286 + 30];
  std::memcpy(lens, lit_len, (size_t)hlit);
  std::memcpy(lens + hlit, dist_len, (size_t)hdist);
  const int nlens = hlit + hdist;
  std::vector<std::pair<uint8_t, uint8_t>> cl;  // (symbol, extra value)
  for (int i = 0; i < nlens;) {
    const uint8_t l = lens[i];
    int run = 1;
    while (i + run < nlens && lens[i + run] == l) ++run;
    i += run;
    if (l == 0) {
      while (run >= 11) {
        const int r = std::min(run, 138);
        cl.push_back({18, (uint8_t)(r - 11)});
        run -= r;
      }
      if (run >= 3) {
        cl.push_back({17, (uint8_t)(run - 3)});
        run = 0;
      }
    } else {
      cl.push_back({l, 0});
      --run;
      while (run >= 3) {
        const int r = std::min(run, 6);
        cl.push_back({16, (uint8_t)(r - 3)});
        run -= r;
      }
    }
    for (; run > 0; --run) cl.push_back({l, 0});
  }
  uint32_t cl_freq[19] = {0};
  for (const auto& [s, e] : cl) ++cl_freq[s];
  uint8_t cl_len[19];
  huffman_lengths(cl_freq, 19, 7, cl_len);
  int hclen = 19;
  while (hclen > 4 && !cl_len[kCodeLengthOrder[hclen - 1]]) --hclen;

  uint64_t bits = 3 + 5 + 5 + 4 + 3 * (uint64_t)hclen + extra_bits;
  for (const auto& [s, e] : cl) bits += cl_len[s] + (s == 16 ? 2 : s == 17 ? 3 : s == 18 ? 7 : 0);
  for (int s = 0; s < 286; ++s) bits += (uint64_t)lit_freq[s] * lit_len[s];
  for (int s = 0; s < 30; ++s) bits += (uint64_t)dist_freq[s] * dist_len[s];
  if (bits >= stored_bits(to - from)) {
    bw.stored(data + from, to - from, last);
    return;
  }

  uint16_t lit_code[286], dist_code[30], cl_code[19];
  canonical_codes(lit_len, 286, lit_code);
  canonical_codes(dist_len, 30, dist_code);
  canonical_codes(cl_len, 19, cl_code);
  bw.put(last ? 1 : 0, 1);
  bw.put(2, 2);  // dynamic Huffman codes
  bw.put((uint32_t)(hlit - 257), 5);
  bw.put((uint32_t)(hdist - 1), 5);
  bw.put((uint32_t)(hclen - 4), 4);
  for (int i = 0; i < hclen; ++i) bw.put(cl_len[kCodeLengthOrder[i]], 3);
  for (const auto& [s, e] : cl) {
    bw.put(cl_code[s], cl_len[s]);
    if (s >= 16) bw.put(e, s == 16 ? 2 : s == 17 ? 3 : 7);
  }
  // Each token's bits, all of them at once: a literal's code, or a match's length code, its extra
  // bits, its distance's code and extra bits (at most 15 + 5 + 15 + 13 = 48 bits). Only the tokens
  // that occur: the others would index codes of unused symbols.
  uint64_t tok_bits[kTokens];
  uint8_t tok_n[kTokens];
  for (int x = 0; x < 256; ++x) tok_bits[x] = lit_code[x], tok_n[x] = lit_len[x];
  for (int x = 256; x < kTokens; ++x) {
    tok_bits[x] = 0, tok_n[x] = 0;
    if (!(tok_freq[0][x] + tok_freq[1][x])) continue;
    const int which = (x - 256) >> 8, len = ((x - 256) & 255) + 3;
    const LengthCode& l = lc[(size_t)len];
    const int ds = dist.symbol[which];
    const int n1 = lit_len[l.symbol] + l.extra_bits;
    tok_bits[x] = (lit_code[l.symbol] | (uint64_t)l.extra << lit_len[l.symbol]) |
                  (dist_code[ds] | (uint64_t)dist.extra[which] << dist_len[ds]) << n1;
    tok_n[x] = (uint8_t)(n1 + dist_len[ds] + dist.extra_bits[which]);
  }
  // The tokens written without a branch each: the whole bytes of the bit buffer stored 8 at a time
  // (the bytes past them are written again later; the piece's bound leaves room), at most 7 bits
  // kept. The writer's state is in locals meanwhile (through `bw`, every byte stored could be it).
  uint64_t buf = bw.buf;
  int count = bw.count;
  uint8_t* out = bw.out;
  auto flush = [&] {
    std::memcpy(out, &buf, 8);
    out += count >> 3;
    buf >>= count & ~7;  // count <= 7 + 48 before: at most a shift by 48
    count &= 7;
  };
  flush();
  for (size_t i = 0; i < ntok; ++i) {
    const Token x = tok[i];
    buf |= tok_bits[x] << count;
    count += tok_n[x];
    flush();
  }
  bw.buf = buf, bw.count = count, bw.out = out;
  bw.put(lit_code[256], lit_len[256]);
}

// Most bytes one piece of n input bytes may take.
size_t piece_bound(size_t n) { return n + n / 8192 + 1024; }

size_t piece_count(size_t n) { return std::max<size_t>(1, (n + kPieceBytes - 1) / kPieceBytes); }

// Piece p of data (the whole stream's last when `last`) into out; returns its size.
size_t encode_piece(const uint8_t* data, size_t from, size_t to, bool last, const Distances& dist, bool windows,
                    Token* tok, uint8_t* out) {
  BitWriter bw(out);
  size_t at = from;
  while (at < to) {
    size_t ntok = 0;
    const size_t end = tokenize(data, at, std::min(to, at + kBlockBytes), to, dist, windows, tok, &ntok);
    write_block(bw, tok, ntok, data, at, end, dist, last && end == to);
    at = end;
  }
  if (!last) {  // an empty stored block: the piece ends on a byte boundary
    bw.put(0, 3);
    bw.align();
    const uint8_t marker[4] = {0, 0, 0xff, 0xff};
    std::memcpy(bw.out, marker, 4);
    bw.out += 4;
  }
  bw.align();
  return (size_t)(bw.out - out);
}

}  // namespace

size_t png_deflate_bound(size_t n) {
  const size_t pieces = piece_count(n);
  size_t total = 2 + 4 + 8;
  for (size_t p = 0; p < pieces; ++p) total += piece_bound(std::min(kPieceBytes, n - std::min(n, p * kPieceBytes)));
  return total;
}

namespace {

size_t deflate_with(const uint8_t* data, size_t n, size_t bpp, size_t stride, bool windows, uint8_t* out) {
  out[0] = 0x78, out[1] = 0x01;  // zlib: deflate, 32 KiB window, no dictionary, fastest
  size_t size = 2;
  if (n == 0) {
    BitWriter bw(out + 2);
    bw.stored(data, 0, true);
    size = (size_t)(bw.out - out);
  } else {
    const Distances dist = distances_for(bpp, stride);
    const size_t pieces = piece_count(n);
    std::vector<size_t> at(pieces + 1, 2), got(pieces, 0);
    for (size_t p = 0; p < pieces; ++p) at[p + 1] = at[p] + piece_bound(std::min(kPieceBytes, n - p * kPieceBytes));
    pool::Array<Token> tokens(pieces * (kBlockBytes + kMaxMatch));  // every token written before it is read
#pragma omp parallel for schedule(dynamic, 1) if (pieces > 1)
    for (size_t p = 0; p < pieces; ++p) {
      const size_t from = p * kPieceBytes, to = std::min(n, from + kPieceBytes);
      got[p] = encode_piece(data, from, to, p + 1 == pieces, dist, windows,
                            tokens.data() + p * (kBlockBytes + kMaxMatch), out + at[p]);
    }
    for (size_t p = 0; p < pieces; ++p) {  // the pieces moved together (each only ever moves down)
      std::memmove(out + size, out + at[p], got[p]);
      size += got[p];
    }
  }
  const uint32_t adler = libdeflate_adler32(1, data, n);
  const uint8_t tail[4] = {(uint8_t)(adler >> 24), (uint8_t)(adler >> 16), (uint8_t)(adler >> 8), (uint8_t)adler};
  std::memcpy(out + size, tail, 4);
  return size + 4;
}

}  // namespace

size_t png_deflate(const uint8_t* data, size_t n, size_t bpp, size_t stride, uint8_t* out) {
  return deflate_with(data, n, bpp, stride, true, out);
}

size_t png_deflate_one_by_one(const uint8_t* data, size_t n, size_t bpp, size_t stride, uint8_t* out) {
  return deflate_with(data, n, bpp, stride, false, out);
}

}  // namespace m2fp
