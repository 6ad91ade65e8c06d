// tests/service/test_service_units.cpp: the application layer's building blocks: SHA-256 (FIPS 180-4
// example vectors), the byte-bounded LRU cache, the bounded worker pool, and the JSON reports shared by
// `m2fp parse` and the server (legend, garments merged into persons), the strict number parsing every
// front door's options use.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/io.h"
#include "service/lru_cache.h"
#include "service/numbers.h"
#include "service/parse_queue.h"
#include "service/report.h"
#include "service/sha256.h"
#include "service/work_pool.h"
#include "tests/service/service_test_util.h"

using namespace m2fp;
using namespace m2fp::service;
using m2fp::test::Gate;

// ---- SHA-256 ----------------------------------------------------------------------------------------
// FIPS 180-4 / NIST "Examples with intermediate values" (SHA256.pdf, SHA2_Additional.pdf).
TEST(Sha256, FipsExampleVectors) {
  struct V {
    std::string msg, hex;
  } vs[] = {
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
  };
  for (const V& v : vs) EXPECT_EQ(sha256_hex(v.msg), v.hex) << "message '" << v.msg << "'";
}

TEST(Sha256, OneMillionA) {
  const std::string m(1000000, 'a');
  EXPECT_EQ(sha256_hex(m), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, BinaryAndAwkwardLengths) {
  // Lengths around the 64-byte block and the 56-byte padding boundary, with NUL bytes: the digest
  // must depend on every byte (no C-string truncation) and differ between neighbours.
  std::set<std::string> seen;
  for (size_t n : {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129}) {
    std::string m(n, '\0');
    for (size_t i = 0; i < n; ++i) m[i] = (char)(i * 7);
    const std::string h = sha256_hex(m);
    ASSERT_EQ(h.size(), 64u);
    EXPECT_TRUE(seen.insert(h).second) << "collision at length " << n;
  }
  // 0x00 is hashed: "\0" differs from "".
  EXPECT_NE(sha256_hex(std::string(1, '\0')), sha256_hex(std::string()));
}

// ---- LRU cache --------------------------------------------------------------------------------------
TEST(LruCache, EvictsLeastRecentlyUsedByBytes) {
  LruCache<int> c(100, 1000);
  c.put("a", std::make_shared<int>(1), 40);
  c.put("b", std::make_shared<int>(2), 40);
  ASSERT_TRUE(c.get("a"));  // a is now more recent than b
  c.put("c", std::make_shared<int>(3), 40);  // 120 > 100: b goes
  EXPECT_TRUE(c.get("a"));
  EXPECT_FALSE(c.get("b"));
  EXPECT_TRUE(c.get("c"));
  const auto s = c.stats();
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.bytes, 80u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 1u);
}

TEST(LruCache, EntryBoundReplaceAndOversize) {
  LruCache<std::string> c(1 << 20, 2);
  c.put("x", std::make_shared<std::string>("1"), 10);
  c.put("y", std::make_shared<std::string>("2"), 10);
  c.put("x", std::make_shared<std::string>("1b"), 30);  // replace: no eviction, bytes updated
  EXPECT_EQ(c.stats().entries, 2u);
  EXPECT_EQ(c.stats().bytes, 40u);
  EXPECT_EQ(*c.get("x"), "1b");
  c.put("z", std::make_shared<std::string>("3"), 10);  // 3 entries > 2: y (least recent) goes
  EXPECT_FALSE(c.get("y"));
  EXPECT_FALSE(c.put("huge", std::make_shared<std::string>("h"), (1 << 20) + 1));
  EXPECT_FALSE(c.get("huge"));
  EXPECT_TRUE(c.get("x"));
  EXPECT_TRUE(c.get("z"));
}

TEST(LruCache, DisabledStoresNothingAndReadersKeepValues) {
  LruCache<int> off(0, 100);
  EXPECT_FALSE(off.put("a", std::make_shared<int>(1), 1));
  EXPECT_FALSE(off.get("a"));
  LruCache<int> c(10, 10);
  c.put("a", std::make_shared<int>(7), 10);
  auto held = c.get("a");
  c.put("b", std::make_shared<int>(8), 10);  // evicts a
  EXPECT_FALSE(c.get("a"));
  ASSERT_TRUE(held);
  EXPECT_EQ(*held, 7);  // the reader's copy outlives the eviction
}

TEST(LruCache, ConcurrentUse) {
  LruCache<int> c(64, 1000);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&c, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string k = std::to_string((i * 7 + t) % 50);
        if (!c.get(k)) c.put(k, std::make_shared<int>(i), 1 + i % 5);
      }
    });
  for (auto& t : ts) t.join();
  const auto s = c.stats();
  EXPECT_LE(s.bytes, 64u);
  EXPECT_EQ(s.hits + s.misses, 8000u);
}

// ---- worker pool ------------------------------------------------------------------------------------
TEST(WorkPool, RunsEveryTaskOnInitialisedWorkers) {
  std::mutex mu;
  std::set<int> inited;
  std::atomic<int> ran{0};
  thread_local int my_index = -1;
  {
    WorkPool pool(3, 100, [&](int i) {
      my_index = i;
      std::lock_guard<std::mutex> lock(mu);
      inited.insert(i);
    });
    EXPECT_EQ(pool.workers(), 3);
    for (int i = 0; i < 50; ++i)
      ASSERT_TRUE(pool.try_submit([&](bool cancelled) {
        EXPECT_FALSE(cancelled);
        EXPECT_GE(my_index, 0);  // ran on a worker that was set up
        ++ran;
      }));
    for (int i = 0; i < 500 && ran < 50; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(ran.load(), 50);
  EXPECT_EQ(inited, (std::set<int>{0, 1, 2}));
}

TEST(WorkPool, RefusesBeyondCapacityAndCancelsWaitingOnStop) {
  Gate gate;
  std::atomic<int> ran{0}, cancelled{0};
  auto task = [&](bool c) {
    if (c) {
      ++cancelled;
      return;
    }
    gate.wait();
    ++ran;
  };
  WorkPool pool(1, 2);
  ASSERT_TRUE(pool.try_submit(task));  // taken by the worker
  for (int i = 0; i < 400 && pool.busy() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(pool.busy(), 1);
  EXPECT_TRUE(pool.try_submit(task));  // waiting 1
  EXPECT_TRUE(pool.try_submit(task));  // waiting 2 = capacity
  EXPECT_FALSE(pool.try_submit(task)) << "a third waiting task must be refused";
  EXPECT_EQ(pool.depth(), 2u);
  std::thread stopper([&] { pool.stop(); });  // cancels the 2 waiting, waits for the running one
  for (int i = 0; i < 400 && cancelled < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(cancelled.load(), 2);
  gate.set(true);
  stopper.join();
  EXPECT_EQ(ran.load(), 1);
  EXPECT_FALSE(pool.try_submit(task)) << "a stopped pool takes nothing";
}

TEST(WorkPool, ZeroCapacityAcceptsOnlyForAnIdleWorker) {
  Gate gate;
  WorkPool pool(1, 0);
  for (int i = 0; i < 400 && pool.busy() == 0 && pool.depth() == 0; ++i) {
    if (i == 0) ASSERT_TRUE(pool.try_submit([&](bool c) { if (!c) gate.wait(); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < 400 && pool.busy() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(pool.try_submit([](bool) {}));
  gate.set(true);
  pool.stop();
  EXPECT_THROW(WorkPool(0, 1), std::invalid_argument);
}

TEST(WorkPool, SubmitAllTakesEveryTaskOrNone) {
  Gate gate;
  std::atomic<int> ran{0}, cancelled{0};
  auto task = [&](bool c) {
    if (c) {
      ++cancelled;
      return;
    }
    gate.wait();
    ++ran;
  };
  WorkPool pool(2, 3);
  EXPECT_EQ(pool.free_places(), 3u) << "max(idle workers, capacity) with nothing queued";
  EXPECT_FALSE(pool.try_submit_all({task, task, task, task})) << "4 tasks, 3 places";
  EXPECT_EQ(pool.depth(), 0u) << "nothing queued by a refused batch";
  ASSERT_TRUE(pool.try_submit_all({task, task}));  // both workers take one
  for (int i = 0; i < 400 && pool.busy() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(pool.busy(), 2);
  EXPECT_EQ(pool.free_places(), 3u);
  EXPECT_FALSE(pool.try_submit_all({task, task, task, task}));
  EXPECT_TRUE(pool.try_submit_all({task, task}));
  EXPECT_EQ(pool.free_places(), 1u);
  EXPECT_FALSE(pool.try_submit_all({task, task}));
  EXPECT_TRUE(pool.try_submit_all({}));  // nothing asked, nothing needed
  EXPECT_TRUE(pool.try_submit(task));
  EXPECT_EQ(pool.free_places(), 0u);
  EXPECT_FALSE(pool.try_submit(task));
  EXPECT_EQ(pool.depth(), 3u);
  gate.set(true);
  pool.stop();
  EXPECT_EQ(ran.load() + cancelled.load(), 5);
  EXPECT_EQ(pool.free_places(), 0u) << "a stopped pool takes nothing";
  EXPECT_FALSE(pool.try_submit_all({task}));
}

// Retry-After's per-photo time: one slow photo (the 49-megapixel PNG of issue 12: 53 s among 1 s
// photos) moves a median by at most one sample, where the running mean it replaced jumped to 11 s.
TEST(MedianWindow, OneOutlierDoesNotInflateIt) {
  MedianWindow m(31);
  EXPECT_EQ(m.median(), 0.0);
  m.add(2.0);
  EXPECT_EQ(m.median(), 2.0);
  m.add(4.0);
  EXPECT_EQ(m.median(), 3.0);  // even count: the middle two's mean
  MedianWindow w(31);
  for (int i = 0; i < 10; ++i) w.add(1.0 + 0.01 * i);
  w.add(53.0);
  EXPECT_NEAR(w.median(), 1.05, 1e-9);
  for (int i = 0; i < 4; ++i) w.add(53.0);  // 5 of 15 slow: still the typical photo
  EXPECT_LT(w.median(), 1.1);
  // The window forgets: once slow photos are the rule, the median follows them.
  for (int i = 0; i < 31; ++i) w.add(20.0);
  EXPECT_EQ(w.count(), 31u);
  EXPECT_EQ(w.median(), 20.0);
}

TEST(WorkPool, ThrowingTaskDoesNotKillTheWorker) {
  std::promise<void> done;
  WorkPool pool(1, 4);
  ASSERT_TRUE(pool.try_submit([](bool) { throw std::runtime_error("boom"); }));
  ASSERT_TRUE(pool.try_submit([&](bool) { done.set_value(); }));
  EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

// ---- JSON shared with m2fp parse ---------------------------------------------------------------------
// write_json_file streams the text in 64 KiB pieces: the file is j.dump(2) and a newline, byte for
// byte, with strings longer than a piece, escapes, non-ASCII text, numbers, empty containers (it lays
// out objects and arrays itself and copies strings that need no escape: dump_pretty).
TEST(Report, JsonFileIsTheDumpByteForByte) {
  nlohmann::json j;
  j["counts"] = std::string(200000, 'a') + "\"quoted\"\n\t" + std::string(70000, 'b');
  // COCO RLE strings (characters 48..111: copied as they are, or, with a backslash, escaped), longer
  // than a piece and short, in an array of objects as parsing_json has them.
  std::string rle, rle_bs;
  for (int i = 0; i < 150000; ++i) rle += (char)(48 + (i * 7919) % 64 == 92 ? 93 : 48 + (i * 7919) % 64);
  for (int i = 0; i < 3000; ++i) rle_bs += (char)(48 + (i * 31) % 64);
  j["masks"] = {{{"size", {3000, 4000}}, {"counts", rle}}, {{"size", {3, 4}}, {"counts", rle_bs}}, {{"counts", "0"}}};
  j["names"] = {"Left-shoe", "Gr\u00fcn \u2014 navy", "", "ctl\x01"};
  j["numbers"] = {0.1, 1e-7, -3, 12345678901234LL, 0.6f, nullptr, true};
  j["empty"] = {{"array", nlohmann::json::array()}, {"object", nlohmann::json::object()}};
  for (int i = 0; i < 5000; ++i) j["instances"].push_back({{"id", i}, {"bbox", {i, i + 1, i + 2, i + 3}}});
  // Containers in containers, keys that need escapes, text with a backslash, DEL and a 4-byte character.
  j["nested"] = {{"a\"b", {{1, {}}, nlohmann::json::array({nlohmann::json::object()}), {{"k\\", "v\x7f"}}}},
                 {"\u00e9t\u00e9", "back\\slash \U0001F600"},
                 {"", {{"deep", {{"deeper", {{"deepest", {1.5, "x"}}}}}}}}};
  const std::string path = ::testing::TempDir() + "/result.json";
  write_json_file(path, j);
  FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string text;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  EXPECT_EQ(text, j.dump(2) + "\n");
  EXPECT_THROW(write_json_file(::testing::TempDir() + "/no/such/folder/result.json", j), IoError);
  // Text that is not UTF-8 is refused as j.dump refuses it, in a value or in a key.
  EXPECT_THROW(write_json_file(path, nlohmann::json{{"counts", "ab\xff"}}), nlohmann::json::type_error);
  EXPECT_THROW(write_json_file(path, nlohmann::json{{"k\xc3", 1}}), nlohmann::json::type_error);
  // A bare value, an empty document.
  for (const nlohmann::json& v : {nlohmann::json("plain"), nlohmann::json(3.25), nlohmann::json::object(),
                                  nlohmann::json::array(), nlohmann::json()}) {
    write_json_file(path, v);
    std::ifstream in(path, std::ios::binary);
    const std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(back, v.dump(2) + "\n");
  }
}

// A long array of objects near the top with over 1 MB of text (a 12 MP photo's instances) is laid out
// on two threads, its second half into text of its own (report.cpp, second_half): the file is still
// j.dump(2) byte for byte, wherever the cut falls, and an element that cannot be written (text that is
// not UTF-8) throws as before, in either half.
TEST(Report, JsonFileOfALongArrayOnTwoThreadsIsTheDump) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  nlohmann::json j;
  j["image"] = {{"width", 4000}, {"height", 3000}};
  for (int i = 0; i < 23; ++i) {
    std::string rle;  // COCO RLE characters (48..111, the backslash among them), sizes that differ
    for (int k = 0; k < 40000 + 9000 * (i % 5); ++k) rle += (char)(48 + (k * 7919 + i) % 64);
    j["instances"].push_back({{"id", i}, {"label", i % 3 ? "Face" : "Gr\u00fcn \"q\""},
                              {"bbox", {i, i + 1, i + 2, i + 3}}, {"mask", {{"size", {3000, 4000}}, {"counts", rle}}}});
  }
  j["persons"] = nlohmann::json::array();
  const std::string path = ::testing::TempDir() + "/result_two_threads.json";
  auto read_back = [&] {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  write_json_file(path, j);
  const std::string back = read_back(), want = j.dump(2) + "\n";
  const size_t at = std::mismatch(back.begin(), back.begin() + std::min(back.size(), want.size()), want.begin()).first -
                    back.begin();
  EXPECT_TRUE(back == want) << "sizes " << back.size() << " and " << want.size() << ", first difference at byte " << at
                            << ": ..." << back.substr(at > 40 ? at - 40 : 0, 80) << "... against ..."
                            << want.substr(at > 40 ? at - 40 : 0, 80) << "...";
  for (int bad : {1, 21}) {  // in the first half, in the second
    nlohmann::json b = j;
    b["instances"][bad]["label"] = "ab\xff";
    EXPECT_THROW(write_json_file(path, b), nlohmann::json::type_error) << "element " << bad;
  }
  omp_set_num_threads(threads);
}

TEST(Report, LegendAndGarmentsInPersons) {
  Parsing p;
  p.width = 4;
  p.height = 1;
  p.class_names = {"Background", "Hat", "Hair"};
  p.labels = {0, 2, 2, 0};
  p.label_fractions = {0.5, 0.0, 0.5};
  p.persons.resize(2);
  nlohmann::json leg = legend_json(p);
  ASSERT_EQ(leg.size(), 1u);  // Background and absent labels left out
  EXPECT_EQ(leg[0]["label"], "Hair");
  EXPECT_EQ(leg[0]["id"], 2);
  EXPECT_EQ(leg[0]["color"], "#ff0000");  // CIHP palette entry 2
  EXPECT_DOUBLE_EQ(leg[0]["fraction"].get<double>(), 0.5);

  nlohmann::json j = parsing_json(p);
  PersonOutfit o;
  o.person = 1;
  Garment g;
  g.category = "hat";
  g.slot = "accessory";
  g.person = 1;
  o.garments.push_back(g);
  add_person_garments(j, {o});
  ASSERT_EQ(j["persons"].size(), 2u);
  EXPECT_TRUE(j["persons"][0]["garments"].empty());
  ASSERT_EQ(j["persons"][1]["garments"].size(), 1u);
  EXPECT_EQ(j["persons"][1]["garments"][0]["category"], "hat");

  // Single-person parsing: no person instances, the outfit library's person 0 becomes the entry.
  Parsing sp = p;
  sp.persons.clear();
  nlohmann::json js = parsing_json(sp);
  o.person = 0;
  add_person_garments(js, {o});
  ASSERT_EQ(js["persons"].size(), 1u);
  EXPECT_EQ(js["persons"][0]["id"], 0);
  EXPECT_EQ(js["persons"][0]["garments"][0]["category"], "hat");
}

TEST(Numbers, IntegersAreTheWholeText) {
  EXPECT_EQ(parse_integer("0"), 0L);
  EXPECT_EQ(parse_integer("300"), 300L);
  EXPECT_EQ(parse_integer("-12"), -12L);
  for (const char* bad : {"", " 5", "5 ", "+5", "5x", "0x10", "1.0", "1e3", "--1", "99999999999999999999"})
    EXPECT_FALSE(parse_integer(bad).has_value()) << "'" << bad << "'";
}

TEST(Numbers, FiniteNumbersAreTheWholeText) {
  EXPECT_EQ(parse_finite("0.5"), 0.5);
  EXPECT_EQ(parse_finite("12"), 12.0);
  EXPECT_EQ(parse_finite("1e3"), 1000.0);
  EXPECT_EQ(parse_finite("-2.25"), -2.25);
  for (const char* bad : {"", " 1", "1 ", "+1", "1,5", "inf", "nan", "-inf", "1e999", "0x1p3", "."})
    EXPECT_FALSE(parse_finite(bad).has_value()) << "'" << bad << "'";
}
