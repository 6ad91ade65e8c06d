// tests/engine/test_side_by_side.cpp: engine/side_by_side.h, jobs and loops on one OpenMP team.
#include <gtest/gtest.h>

#include <omp.h>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/side_by_side.h"

using namespace m2fp;

namespace {

// Runs f with the OpenMP thread count set to n, then restores it.
void with_threads(int n, const std::function<void()>& f) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(n);
  f();
  omp_set_num_threads(before);
}

TEST(SideBySide, EveryJobRunsOnceOnOneTeam) {
  for (int threads : {1, 2, 3}) {
    with_threads(threads, [&] {
      std::vector<std::atomic<int>> runs(7);
      std::atomic<int> nested_threads{0};
      std::vector<std::function<void()>> jobs;
      for (size_t i = 0; i < runs.size(); ++i)
        jobs.push_back([&, i] {
          ++runs[i];
          // A parallel region inside a job is nested, so inactive: a team of one.
#pragma omp parallel
          nested_threads += omp_get_num_threads() - 1;
        });
      run_side_by_side(jobs);
      for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].load(), 1) << "job " << i << ", threads " << threads;
      EXPECT_EQ(nested_threads.load(), 0) << threads;
    });
  }
  run_side_by_side({});  // nothing to do
}

TEST(SideBySide, LoopsInsideJobsCoverEveryIndexOnce) {
  with_threads(2, [] {
    constexpr size_t kJobs = 4, kN = 301;  // an awkward count
    std::vector<std::vector<int>> hits(kJobs, std::vector<int>(kN, 0));
    std::vector<std::function<void()>> jobs;
    for (size_t j = 0; j < kJobs; ++j)
      jobs.push_back([&, j] { for_each_index(kN, true, [&](size_t i) { hits[j][i] += (int)(i + 1); }); });
    run_side_by_side(jobs);
    for (size_t j = 0; j < kJobs; ++j)
      for (size_t i = 0; i < kN; ++i) ASSERT_EQ(hits[j][i], (int)(i + 1)) << "job " << j << ", index " << i;
  });
  // Outside any parallel region (a team of its own), and not parallel at all.
  for (bool parallel : {true, false}) {
    std::vector<int> hits(1000, 0);
    for_each_index(hits.size(), parallel, [&](size_t i) { hits[i] += 1; });
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << i;
  }
}

TEST(SideBySide, TheFirstErrorInOrderIsRethrownAfterEveryJobRan) {
  with_threads(2, [] {
    std::atomic<int> ran{0};
    std::vector<std::function<void()>> jobs;
    for (int i = 0; i < 6; ++i)
      jobs.push_back([&, i] {
        ++ran;
        if (i == 2 || i == 4) throw std::runtime_error("job " + std::to_string(i));
      });
    try {
      run_side_by_side(jobs);
      FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "job 2");
    }
    EXPECT_EQ(ran.load(), 6);
  });
}

TEST(SideBySide, TheLowestFailedIterationIsRethrown) {
  with_threads(2, [] {
    for (bool inside_job : {false, true}) {
      std::atomic<int> ran{0};
      std::string what;
      auto loop = [&] {
        try {
          for_each_index(50, true, [&](size_t i) {
            ++ran;
            if (i == 17 || i == 31) throw std::runtime_error("iteration " + std::to_string(i));
          });
        } catch (const std::runtime_error& e) {
          what = e.what();
        }
      };
      if (inside_job) run_side_by_side({loop, [] {}});
      else loop();
      EXPECT_EQ(what, "iteration 17") << inside_job;
      EXPECT_EQ(ran.load(), 50) << inside_job;
    }
  });
}

}  // namespace
