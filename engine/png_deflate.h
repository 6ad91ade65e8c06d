// engine/png_deflate.h: a fast zlib stream (RFC 1950 / 1951) for PNG's filtered rows.
//
// The pictures m2fp writes (label maps, person maps, their palette colours, the overlay) are mostly
// long runs once filtered with Up: zeros where a row repeats the one above, one value along a
// horizontal edge. This encoder looks for matches at three distances only: 1 (a run of one byte),
// `bpp` (a run of one pixel) and `stride` (the filtered row above), greedily, 64 positions at a
// time from byte-equality masks (AVX2 compares: the literals up to the next match stored at once,
// each match's length a count of the mask's ones); no hash table. The tokens of each block of input
// (256 KiB) get their own Huffman codes (a dynamic block; a stored block when that is smaller). A
// 12-megapixel label map compresses in a few milliseconds, smaller than libdeflate's level 1 makes
// it; photos faster than level 1 (the 12 MP parsing.png: ~65 ms on one thread).
//
// The input is cut into pieces of 4 MiB, encoded side by side on the OpenMP threads: each piece but
// the last ends with an empty stored block (as zlib's Z_SYNC_FLUSH), so the pieces' bytes follow one
// another; matches may reach back into the piece before (the decoder has that data). The pieces'
// sizes do not depend on the number of threads: the bytes are the same however many run.
#pragma once

#include <cstddef>
#include <cstdint>

namespace m2fp {

// Bytes png_deflate may write for n input bytes (at most).
size_t png_deflate_bound(size_t n);

// Writes the zlib stream of data[0, n) to out (at least png_deflate_bound(n) bytes) and returns its
// size. `bpp`: bytes per pixel (1..8); `stride`: bytes per filtered row (its filter byte included);
// both only choose where matches are looked for, any values give a valid stream.
size_t png_deflate(const uint8_t* data, size_t n, size_t bpp, size_t stride, uint8_t* out);

// The same bytes, each position's token decided on its own: png_deflate decides 64 positions at a
// time from byte-equality masks (AVX2, the build's baseline), this is what tests compare it with.
size_t png_deflate_one_by_one(const uint8_t* data, size_t n, size_t bpp, size_t stride, uint8_t* out);

}  // namespace m2fp
