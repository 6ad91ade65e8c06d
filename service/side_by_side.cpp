// service/side_by_side.cpp: see side_by_side.h.
#include "service/side_by_side.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

namespace m2fp::service {

std::vector<std::exception_ptr> run_side_by_side(const std::vector<SideTask>& tasks, int workers) {
  std::vector<std::exception_ptr> errors(tasks.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < tasks.size();) {
      try {
        tasks[i]();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const int extra = std::max(0, std::min(workers, (int)tasks.size()) - 1);
  std::vector<std::thread> threads;
  threads.reserve((size_t)extra);
  for (int t = 0; t < extra; ++t) {
    try {
      threads.emplace_back([&] {
        omp_set_num_threads(1);
        work();
      });
    } catch (const std::system_error&) {  // no more threads to be had: the ones there take every task
      break;
    }
  }
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  work();  // cannot throw: every task's exception is caught
  omp_set_num_threads(before);
  for (std::thread& t : threads) t.join();
  return errors;
}

}  // namespace m2fp::service
