// engine/side_by_side.cpp: jobs as the tasks of one OpenMP team (engine/side_by_side.h).
#include "engine/side_by_side.h"

namespace m2fp {

void run_side_by_side(const std::vector<std::function<void()>>& jobs) {
  std::vector<std::exception_ptr> error(jobs.size());
  auto one = [&](size_t i) {
    try {
      jobs[i]();
    } catch (...) {
      error[i] = std::current_exception();  // each job its own slot
    }
  };
  if (jobs.size() < 2 || omp_get_max_threads() < 2) {
    for (size_t i = 0; i < jobs.size(); ++i) one(i);
  } else {
    // One thread makes the tasks, in order; both take them as they come free (the barrier at the end
    // of the region runs what is left).
#pragma omp parallel
#pragma omp single nowait
    for (size_t i = 0; i < jobs.size(); ++i) {
#pragma omp task firstprivate(i) shared(one)
      one(i);
    }
  }
  for (const std::exception_ptr& e : error)
    if (e) std::rethrow_exception(e);
}

}  // namespace m2fp
