// engine/side_by_side.h: several jobs on one OpenMP team, and loops whose iterations join it.
//
// A stage made of independent jobs (`m2fp parse`'s outputs: four PNG files, the masks' RLE, the
// outfit analysis) used to run as two threads each opening its own OpenMP team: four threads on two
// cores, the idle ones spinning at their barriers. run_side_by_side runs the jobs as OpenMP tasks of
// one team instead (omp_get_max_threads() threads): each job on whichever thread is free, in the
// order given (longest first balances best). Inside a job, an OpenMP parallel region is nested, hence
// inactive: it runs on the job's own thread. The loops written with for_each_index below are the
// exception: inside a parallel region (a job of run_side_by_side) their iterations become tasks of
// the same team, so a thread that is done with its own jobs helps with another job's iterations.
// Results never depend on which thread runs what: each job and iteration writes its own outputs.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <vector>

#include <omp.h>

namespace m2fp {

// Runs every job once, side by side on one team of omp_get_max_threads() threads (one thread:
// one after another, in the order given). Every job runs even when another throws; afterwards the
// exception of the first job (in the order given) that threw is rethrown.
void run_side_by_side(const std::vector<std::function<void()>>& jobs);

// for (i = 0; i < n; ++i) f(i), the iterations side by side when `parallel`: inside a parallel
// region (e.g. a job of run_side_by_side) as tasks of its team (one per iteration, in order), else
// as a parallel for (schedule dynamic, 1) of a team of their own. Every iteration runs even when
// another throws; afterwards the exception of the lowest iteration that threw is rethrown.
template <class F>
void for_each_index(size_t n, bool parallel, F&& f) {
  std::vector<std::exception_ptr> error;  // allocated on the first exception only
  bool failed = false;
  auto one = [&](size_t i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(m2fp_for_each_index_error)
      {
        if (error.empty()) error.resize(n);
        error[i] = std::current_exception();
        failed = true;
      }
    }
  };
  if (!parallel || n < 2) {
    for (size_t i = 0; i < n; ++i) one(i);
  } else if (omp_in_parallel()) {
#pragma omp taskloop grainsize(1) shared(one)
    for (size_t i = 0; i < n; ++i) one(i);
  } else {
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < n; ++i) one(i);
  }
  if (failed)
    for (const std::exception_ptr& e : error)
      if (e) std::rethrow_exception(e);
}

}  // namespace m2fp
