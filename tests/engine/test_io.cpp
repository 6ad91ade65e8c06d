// tests/engine/test_io.cpp: .npy files numpy reads, PNGs PIL reads, atomic writes, base64.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/io.h"
#include "image_test_util.h"

namespace m2fp {
namespace {

using testutil::shell_quote;

std::string shape_arg(const std::vector<int64_t>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out.empty() ? "''" : out;
}

TEST(Npy, HeaderIsVersion1AlignedTo64) {
  for (const auto& shape : std::vector<std::vector<int64_t>>{{}, {5}, {2, 3}, {100, 160, 264}, {0, 3}}) {
    const std::string h = npy_header("<f4", shape);
    EXPECT_EQ(h.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    EXPECT_EQ(h.size() % 64, 0u);
    EXPECT_EQ((size_t)((uint8_t)h[8] | (uint8_t)h[9] << 8), h.size() - 10);
    EXPECT_EQ(h.back(), '\n');
  }
  EXPECT_NE(npy_header("<f4", {5}).find("'shape': (5,), }"), std::string::npos);
  EXPECT_NE(npy_header("<f4", {2, 3}).find("'shape': (2, 3), }"), std::string::npos);
  EXPECT_NE(npy_header("|u1", {}).find("'shape': (), }"), std::string::npos);
}

TEST(Npy, FilesAreReadByNumpyWithShapeDtypeAndValues) {
  testutil::TempDir dir;
  std::string args = "check-npy";
  // Contents follow image_ref.py's npy_expected(): f4 i*0.25-3, u1 i%256, i4 i*7-1000.
  for (const auto& shape : std::vector<std::vector<int64_t>>{{2, 3, 4}, {7}, {1, 1, 13}, {}, {0, 3}, {100, 22}}) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> f((size_t)n);
    std::vector<uint8_t> u((size_t)n);
    std::vector<int32_t> k((size_t)n);
    for (int64_t i = 0; i < n; ++i) {
      f[(size_t)i] = (float)i * 0.25f - 3.f;
      u[(size_t)i] = (uint8_t)(i % 256);
      k[(size_t)i] = (int32_t)(i * 7 - 1000);
    }
    const std::string s = shape_arg(shape);
    const std::string stem = shape.empty() ? "scalar" : s;
    const std::string pf = dir / ("f_" + stem + ".npy"), pu = dir / ("u_" + stem + ".npy"),
                      pk = dir / ("k_" + stem + ".npy");
    write_npy(pf, f.data(), shape);
    write_npy(pu, u.data(), shape);
    write_npy(pk, k.data(), shape);
    EXPECT_FALSE(std::filesystem::exists(pf + ".tmp"));
    for (auto [path, kind] : {std::pair{pf, "f4"}, {pu, "u1"}, {pk, "i4"}})
      args += " " + shell_quote(path) + " " + kind + " " + s;
  }
  // One Python run checks every file (dtype, shape, C order, values).
  std::printf("%s", testutil::run_image_ref(args).c_str());
}

// A w x h grey and RGB picture of diagonal ramps (every value, no runs), for the PNG tests.
void ramp_pictures(int w, int h, std::vector<uint8_t>* gray, std::vector<uint8_t>* rgb) {
  gray->assign((size_t)w * h, 0);
  rgb->assign((size_t)w * h * 3, 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      (*gray)[(size_t)y * w + x] = (uint8_t)((x * 7 + y * 13) % 256);
      for (int c = 0; c < 3; ++c) (*rgb)[((size_t)y * w + x) * 3 + c] = (uint8_t)((x * 7 + y * 13 + c * 50) % 256);
    }
}

TEST(Png, FilesAreReadByPilAndRoundTrip) {
  testutil::TempDir dir;
  const int w = 13, h = 7;
  std::vector<uint8_t> gray, rgb;
  ramp_pictures(w, h, &gray, &rgb);
  write_png_gray8(dir / "g.png", gray.data(), w, h);
  write_png_rgb(dir / "c.png", rgb.data(), w, h);
  std::printf("  PIL: %s", testutil::run_image_ref("check-png " + shell_quote(dir / "g.png") + " L 13 7").c_str());
  std::printf("  PIL: %s", testutil::run_image_ref("check-png " + shell_quote(dir / "c.png") + " RGB 13 7").c_str());
  // In memory, then back through our decoder.
  const std::vector<uint8_t> png = encode_png(rgb.data(), w, h, 3);
  const Image back = decode_image(png.data(), png.size());
  EXPECT_EQ(back.width, w);
  EXPECT_EQ(back.height, h);
  EXPECT_EQ(back.rgb, rgb);
  EXPECT_THROW(encode_png(rgb.data(), 0, h, 3), IoError);
  EXPECT_THROW(encode_png(rgb.data(), w, h, 5), IoError);
}

// Pictures of several 4 MiB pieces (png_deflate encodes them side by side): 4099x1100 RGB is 13.5 MB
// of filtered rows, 4099x1100 grey 4.5 MB; PIL (zlib) reads the pixels back.
TEST(Png, LargePicturesAreReadByPil) {
  testutil::TempDir dir;
  const int w = 4099, h = 1100;
  std::vector<uint8_t> gray, rgb;
  ramp_pictures(w, h, &gray, &rgb);
  write_png_gray8(dir / "g.png", gray.data(), w, h);
  write_png_rgb(dir / "c.png", rgb.data(), w, h);
  std::printf("  PIL: %s", testutil::run_image_ref("check-png " + shell_quote(dir / "g.png") + " L 4099 1100").c_str());
  std::printf("  PIL: %s", testutil::run_image_ref("check-png " + shell_quote(dir / "c.png") + " RGB 4099 1100").c_str());
  const std::vector<uint8_t> png = encode_png(rgb.data(), w, h, 3);
  const Image back = decode_image(png.data(), png.size());
  EXPECT_EQ(back.rgb, rgb);
}

TEST(AtomicWrite, ErrorsNameThePathAndLeaveNoFile) {
  testutil::TempDir dir;
  const std::string missing = dir / "no/such/dir/out.npy";
  float v = 1.f;
  try {
    write_npy(missing, &v, {1});
    ADD_FAILURE() << "write into a missing folder succeeded";
  } catch (const IoError& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos);
  }
  // Target is a directory: the rename fails; the temporary is removed.
  const std::string target = dir / "adir";
  std::filesystem::create_directories(target + "/x");
  try {
    write_file_atomic(target, std::string("hello"));
    ADD_FAILURE() << "rename over a directory succeeded";
  } catch (const IoError& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(target + ".tmp"));
  // A file is replaced whole.
  const std::string f = dir / "a.json";
  write_file_atomic(f, std::string(1000, 'x'));
  write_file_atomic(f, std::string("{}\n"));
  EXPECT_EQ(std::filesystem::file_size(f), 3u);
  EXPECT_THROW(write_file_atomic("", std::string("x")), IoError);
  EXPECT_THROW(write_npy(dir / "bad.npy", &v, {-1}), IoError);
}

TEST(Base64, Rfc4648Vectors) {
  auto b64 = [](const std::string& s) { return base64_encode(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg==");
  EXPECT_EQ(b64("fo"), "Zm8=");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg==");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::vector<uint8_t>{0xFF, 0xFF, 0xFE, 0x00}), "///+AA==");
}

}  // namespace
}  // namespace m2fp
