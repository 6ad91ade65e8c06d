// tests/service/test_prepare_sizes.cpp: preparing a session for photo sizes (SessionOptions::
// prepare_photos and warm_up, Session::prepare: what `m2fp parse`, `m2fp serve --prepare`, the C API's
// prepare= and the Python package use), the sizes' syntax, the photo size read from a header, and
// that a prepared (and warmed-up) session parses byte-identically to a plain one. Synthetic CIHP
// checkpoint (random weights, ctest fixture_synthetic_cihp).
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/io.h"
#include "service/session.h"

namespace m2fp::service {
namespace {

std::string cihp_model() { return std::string(M2FP_TESTDATA) + "/cihp_synth.safetensors"; }

using Sizes = std::vector<std::pair<int, int>>;

TEST(PhotoSizes, Parses) {
  EXPECT_EQ(parse_photo_sizes("640x480"), (Sizes{{640, 480}}));
  EXPECT_EQ(parse_photo_sizes("640x480,1080x1920"), (Sizes{{640, 480}, {1080, 1920}}));
  EXPECT_EQ(parse_photo_sizes("common").size(), 6u);
  EXPECT_EQ(parse_photo_sizes("1x65535"), (Sizes{{1, 65535}}));
  EXPECT_EQ(parse_photo_sizes("0640x000480"), (Sizes{{640, 480}}));  // leading zeros: service/numbers.h
}

TEST(PhotoSizes, RefusesWithAMessage) {
  for (const char* bad : {"", "640", "640x", "x480", "0x480", "640x0", "65536x10", "640x480,", "-640x480",
                          "640X480", "640x480x3", "1e3x480", "common,640x480", " 640x480",
                          "+640x480", "640x480 ", "640x99999999999999999999", "640x0x1p4"}) {
    try {
      parse_photo_sizes(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const OptionError& e) {
      EXPECT_NE(std::string(e.what()).find("WIDTHxHEIGHT"), std::string::npos) << e.what();
    }
  }
}

TEST(PhotoSizes, FromTheHeader) {
  const Image img = Image::blank(48, 30, 10, 20, 30);
  const std::vector<uint8_t> png = encode_png(img);
  int w = 0, h = 0;
  ASSERT_TRUE(photo_size(png.data(), png.size(), &w, &h));
  EXPECT_EQ(w, 48);
  EXPECT_EQ(h, 30);
  const std::vector<uint8_t> junk(100, 7);
  EXPECT_FALSE(photo_size(junk.data(), junk.size(), &w, &h));
  EXPECT_FALSE(photo_size(png.data(), 20, &w, &h));  // cut inside the header
  EXPECT_FALSE(photo_file_size("/nonexistent/photo.png", &w, &h));
}

// A photo whose padded input differs from the prepared one by a row of 32: the session prepares
// what it is asked for and parses every size the same as a plain session.
TEST(PreparedSession, ParsesByteIdenticallyToAPlainOne) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  Image img = Image::blank(80, 60);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = (uint8_t)((i * 7919 + i / 240 * 31) % 251);
  const std::vector<uint8_t> png = encode_png(img);

  SessionOptions so;
  so.model_path = cihp_model();
  so.parse.short_edge = 64;
  so.parse.max_size = 128;
  Session plain(so);
  EXPECT_EQ(plain.input_size(80, 60), (std::pair<int64_t, int64_t>{64, 96}));  // 64x85 padded
  EXPECT_EQ(plain.input_size(60, 80), (std::pair<int64_t, int64_t>{96, 64}));

  so.prepare_photos = {{80, 60}, {60, 80}};
  so.warm_up = true;
  Session prepared(so);
  for (int rep = 0; rep < 2; ++rep) {
    const ParseResult a = prepared.parse(png.data(), png.size());
    const ParseResult b = plain.parse(png.data(), png.size());
    EXPECT_EQ(a.geometry.Hp, 64);
    EXPECT_EQ(a.geometry.Wp, 96);
    EXPECT_EQ(a.parsing.labels, b.parsing.labels);
    ASSERT_EQ(a.parsing.instances.size(), b.parsing.instances.size());
    for (size_t i = 0; i < a.parsing.instances.size(); ++i) {
      EXPECT_EQ(a.parsing.instances[i].score, b.parsing.instances[i].score);
      EXPECT_EQ(a.parsing.instances[i].mask_bits, b.parsing.instances[i].mask_bits);
    }
  }
}

// Without warm_up, the session maps the buffer pool's blocks for its first prepared photo size at
// load (M2FP::map_buffers): the first parse of such a photo maps little new pool memory (pre- and
// post-processing's own; a plain session's first parse maps the network's too), and parses
// byte-identically to a plain session.
TEST(PreparedSession, MapsTheBufferPoolsBlocksForTheFirstSize) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  if (pool::stats().limit_bytes == 0) GTEST_SKIP() << "M2FP_BUFFER_POOL_MB=0: the pool keeps nothing";
  Image img = Image::blank(320, 240);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = (uint8_t)((i * 7919 + i / 960 * 31) % 251);
  const std::vector<uint8_t> png = encode_png(img);
  SessionOptions so;
  so.model_path = cihp_model();
  so.parse.short_edge = 256;
  so.parse.max_size = 512;

  pool::trim();  // nothing cached from an earlier test
  size_t missed = pool::stats().missed_bytes;
  std::unique_ptr<Session> plain = std::make_unique<Session>(so);
  const ParseResult b = plain->parse(png.data(), png.size());
  const size_t plain_missed = pool::stats().missed_bytes - missed;
  plain.reset();

  pool::trim();
  so.prepare_photos = {{320, 240}, {240, 320}};
  Session prepared(so);
  missed = pool::stats().missed_bytes;
  const ParseResult a = prepared.parse(png.data(), png.size());
  const size_t prepared_missed = pool::stats().missed_bytes - missed;
  EXPECT_GT(plain_missed, size_t(10) << 20);
  EXPECT_LT(prepared_missed * 4, plain_missed) << prepared_missed << " bytes of new pool memory in the first parse "
                                                  "of a prepared session, " << plain_missed << " in a plain one's";
  EXPECT_EQ(a.parsing.labels, b.parsing.labels);
  ASSERT_EQ(a.parsing.instances.size(), b.parsing.instances.size());
  for (size_t i = 0; i < a.parsing.instances.size(); ++i) {
    EXPECT_EQ(a.parsing.instances[i].score, b.parsing.instances[i].score);
    EXPECT_EQ(a.parsing.instances[i].mask_bits, b.parsing.instances[i].mask_bits);
  }
}

TEST(PreparedSession, RefusesAPhotoSizeNoParseAccepts) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  SessionOptions so;
  so.model_path = cihp_model();
  so.parse.short_edge = 64;
  so.parse.max_size = 128;
  so.prepare_photos = {{1, 60000}};  // resized to 0 x 128: too elongated
  EXPECT_THROW(Session s(so), ImageError);
}

}  // namespace
}  // namespace m2fp::service
