// tests/service/test_side_by_side.cpp: tasks side by side on the threads (service/side_by_side.h),
// and what `m2fp parse` makes with them: result.json's parts (service/result_doc.h) and the pictures
// (service/pictures.h), the same as made one after another. The parsing tests use the synthetic CIHP
// checkpoint (random weights, ctest fixture_synthetic_cihp).
#include <gtest/gtest.h>

#include <omp.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/io.h"
#include "service/pictures.h"
#include "service/report.h"
#include "service/result_doc.h"
#include "service/session.h"
#include "service/side_by_side.h"

namespace m2fp::service {
namespace {

// Every task once, on at most `workers` threads, OpenMP on one thread inside each; the caller's
// OpenMP thread count as it was afterwards.
TEST(SideBySide, RunsEveryTaskOnceOnTheThreads) {
  for (int workers : {1, 2, 3}) {
    const int n = 200;
    std::vector<std::atomic<int>> runs(n);
    std::mutex mu;
    std::set<std::thread::id> ids;
    std::atomic<int> omp_not_one{0};
    std::vector<SideTask> tasks;
    for (int i = 0; i < n; ++i)
      tasks.push_back([&, i] {
        ++runs[i];
        if (omp_get_max_threads() != 1) ++omp_not_one;
        int in_region = 0;
#pragma omp parallel
        {
#pragma omp atomic
          ++in_region;
        }
        if (in_region != 1) ++omp_not_one;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        std::lock_guard<std::mutex> lock(mu);
        ids.insert(std::this_thread::get_id());
      });
    omp_set_num_threads(3);
    const std::vector<std::exception_ptr> errors = run_side_by_side(tasks, workers);
    EXPECT_EQ(omp_get_max_threads(), 3) << "workers " << workers;
    ASSERT_EQ(errors.size(), (size_t)n);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(runs[i].load(), 1) << "task " << i << ", workers " << workers;
      EXPECT_FALSE(errors[i]);
    }
    EXPECT_EQ(omp_not_one.load(), 0) << "workers " << workers;
    EXPECT_LE(ids.size(), (size_t)workers);
    if (workers == 1) EXPECT_EQ(*ids.begin(), std::this_thread::get_id());
    if (workers > 1) EXPECT_GT(ids.size(), 1u) << "200 tasks of 0.2 ms each all ran on one thread";
  }
  omp_set_num_threads(2);
}

TEST(SideBySide, OneWorkerRunsInOrderHere) {
  std::vector<int> order;
  std::vector<SideTask> tasks;
  for (int i = 0; i < 10; ++i) tasks.push_back([&order, i] { order.push_back(i); });
  run_side_by_side(tasks, 1);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(run_side_by_side({}, 2).empty());
}

// A task's exception at its index; the others still run.
TEST(SideBySide, ExceptionsAtTheirIndexTheRestStillRun) {
  for (int workers : {1, 2}) {
    std::atomic<int> ran{0};
    std::vector<SideTask> tasks;
    for (int i = 0; i < 20; ++i)
      tasks.push_back([&ran, i] {
        if (i == 3 || i == 17) throw std::runtime_error("task " + std::to_string(i));
        ++ran;
      });
    const std::vector<std::exception_ptr> errors = run_side_by_side(tasks, workers);
    EXPECT_EQ(ran.load(), 18);
    for (int i = 0; i < 20; ++i) {
      if (i != 3 && i != 17) {
        EXPECT_FALSE(errors[i]) << i;
        continue;
      }
      ASSERT_TRUE(errors[i]) << i;
      try {
        std::rethrow_exception(errors[i]);
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "task " + std::to_string(i));
      }
    }
  }
}

std::string cihp_model() { return std::string(M2FP_TESTDATA) + "/cihp_synth.safetensors"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class SideBySideParse : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
    SessionOptions so;
    so.model_path = cihp_model();
    so.parse.short_edge = 96;
    so.parse.max_size = 160;
    session_ = std::make_unique<Session>(so);
    Image img = Image::blank(120, 90);
    for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = (uint8_t)((i * 7919 + i / 360 * 31) % 251);
    const std::vector<uint8_t> png = encode_png(img);
    r_ = session_->parse(png.data(), png.size());
    ASSERT_GT(r_.parsing.instances.size(), 1u) << "the synthetic model found too few instances to test with";
    outfits_ = load_outfit_setup(std::string(), {});
  }
  std::unique_ptr<Session> session_;
  ParseResult r_;
  OutfitSetup outfits_;
};

// result_document's parts made by the tasks (one thread or two) give the document made without
// them: the masks parsing_json makes, the outfit analysis extract_outfits and advise_outfits make.
TEST_F(SideBySideParse, DocumentPartsGiveTheSameDocument) {
  const Parsing& p = r_.parsing;
  const std::vector<std::string> outputs = {"labels.png"};
  nlohmann::json whole = result_document(*session_, r_, "photo.png", outputs, &outfits_);
  // The pieces made here another way: the masks by parsing_json over the OpenMP threads, the outfits
  // straight from the outfit library.
  const nlohmann::json masks_json = parsing_json(p);
  EXPECT_EQ(whole["instances"], masks_json["instances"]);
  const std::vector<PersonOutfit> people =
      extract_outfits(p, r_.image, outfits_.kit->garments, outfits_.kit->garment_options);
  const std::vector<CatalogItem> items = outfits_.catalog->items();
  EXPECT_EQ(whole["outfits"], advise_outfits(people, &items, outfits_.reco, outfits_.kit->rules));
  ASSERT_TRUE(whole["timings_ms"].contains("outfits"));
  whole["timings_ms"].erase("outfits");
  for (int workers : {1, 2}) {
    DocumentParts parts;
    std::vector<SideTask> tasks = outfit_tasks(r_, &outfits_, &parts);
    ASSERT_EQ(tasks.size(), 1u);
    for (SideTask& t : mask_tasks(r_, &parts)) tasks.push_back(std::move(t));
    EXPECT_EQ(tasks.size(), 1 + p.instances.size());
    for (const std::exception_ptr& e : run_side_by_side(tasks, workers)) EXPECT_FALSE(e);
    EXPECT_TRUE(parts.analysed);
    nlohmann::json j = result_document(*session_, r_, "photo.png", outputs, &outfits_, std::move(parts));
    j["timings_ms"].erase("outfits");
    EXPECT_EQ(j, whole) << "workers " << workers;
  }
  // Without the outfits: no outfit task, no outfit keys.
  DocumentParts bare;
  EXPECT_TRUE(outfit_tasks(r_, nullptr, &bare).empty());
  run_side_by_side(mask_tasks(r_, &bare), 2);
  const nlohmann::json plain = result_document(*session_, r_, nullptr, outputs, nullptr, std::move(bare));
  EXPECT_FALSE(plain.contains("outfits"));
  EXPECT_EQ(plain["instances"], masks_json["instances"]);
}

// Tasks beside the document's parts run once each, their time to the last one done is reported, the
// document is the one made without them, and their error is rethrown.
TEST_F(SideBySideParse, DocumentWithTasksBeside) {
  nlohmann::json whole = result_document(*session_, r_, "photo.png", {"labels.png"}, &outfits_);
  whole["timings_ms"].erase("outfits");
  std::atomic<int> ran{0};
  std::vector<SideTask> beside;
  for (int i = 0; i < 2; ++i)
    beside.push_back([&ran] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++ran;
    });
  double beside_ms = -1;
  nlohmann::json j = result_document(*session_, r_, "photo.png", {"labels.png"}, &outfits_, beside, &beside_ms);
  EXPECT_EQ(ran.load(), 2);
  EXPECT_GE(beside_ms, 20.0);
  j["timings_ms"].erase("outfits");
  EXPECT_EQ(j, whole);
  beside.push_back([] { throw IoError("cannot write the picture"); });
  EXPECT_THROW(result_document(*session_, r_, "photo.png", {}, &outfits_, beside, nullptr), IoError);
}

TEST_F(SideBySideParse, DocumentRefusesPartsNotMade) {
  DocumentParts none;
  EXPECT_THROW(result_document(*session_, r_, nullptr, {}, nullptr, std::move(none)), std::logic_error);
  DocumentParts masks_only;
  run_side_by_side(mask_tasks(r_, &masks_only), 2);
  EXPECT_THROW(result_document(*session_, r_, nullptr, {}, &outfits_, std::move(masks_only)), std::logic_error);
  std::vector<nlohmann::json> one_short(r_.parsing.instances.size() - 1);
  EXPECT_THROW(parsing_json(r_.parsing, std::move(one_short)), std::invalid_argument);
}

// The picture tasks write the files picture_files names, the bytes the picture functions give.
TEST_F(SideBySideParse, PicturesAreTheFunctionsBytes) {
  const Parsing& p = r_.parsing;
  const std::string dir = ::testing::TempDir() + "/side_by_side_pictures";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/masks");
  PictureSet s;
  s.dir = dir;
  s.union_names = {"upper_body", "face"};
  s.render.person_boxes = true;
  const std::vector<std::string> files = picture_files(r_, s);
  EXPECT_EQ(files, (std::vector<std::string>{dir + "/parsing.png", dir + "/labels_color.png", dir + "/labels.png",
                                             dir + "/persons.png", dir + "/masks/upper_body.png", dir + "/masks/face.png"}));
  const std::vector<SideTask> tasks = picture_tasks(r_, s);
  ASSERT_EQ(tasks.size(), files.size());
  for (const std::exception_ptr& e : run_side_by_side(tasks, 2)) EXPECT_FALSE(e);
  const std::string ref = ::testing::TempDir() + "/side_by_side_ref.png";
  write_parsing_png(ref, r_.image, p, s.render);
  EXPECT_EQ(read_file(files[0]), read_file(ref));
  write_labels_color_png(ref, p.labels.data(), p.width, p.height);
  EXPECT_EQ(read_file(files[1]), read_file(ref));
  const std::vector<uint8_t> labels = labels_png(p), persons = persons_png(p);
  EXPECT_EQ(read_file(files[2]), std::string(labels.begin(), labels.end()));
  EXPECT_EQ(read_file(files[3]), std::string(persons.begin(), persons.end()));
  const std::vector<uint8_t> upper = union_mask(p, "upper_body");
  write_png_gray8(ref, upper.data(), p.width, p.height);
  EXPECT_EQ(read_file(files[4]), read_file(ref));
  // A folder that cannot be written: each task's IoError at its index.
  s.dir = dir + "/no/such/folder";
  const std::vector<std::exception_ptr> errors = run_side_by_side(picture_tasks(r_, s), 2);
  for (const std::exception_ptr& e : errors) EXPECT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(errors[0]), IoError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace m2fp::service
