// service/work_pool.h: a fixed pool of worker threads behind a bounded queue.
//
// The HTTP server runs every engine call here: N workers share one model, each thread set up once by
// `thread_init(worker_index)` (the server sets that thread's OpenMP thread count there). A task is
// refused, not queued, when `capacity` tasks are already waiting (the server answers 429): memory and
// waiting time stay bounded however many clients connect. Tasks that are still waiting when the pool
// stops are called with cancelled = true instead of being run, so nobody waits for them forever.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace m2fp::service {

class WorkPool {
 public:
  using Task = std::function<void(bool cancelled)>;

  // workers >= 1; capacity = tasks that may wait (0: a task is accepted only when a worker is idle).
  WorkPool(int workers, size_t capacity, std::function<void(int)> thread_init = {});
  ~WorkPool();  // stop()
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues the task; false (task not taken) when the queue is full or the pool is stopping.
  bool try_submit(Task task);
  // Queues every task or none (false: not all of them would fit, or the pool is stopping): a batch
  // takes one place per task, by the same rule as try_submit one after another.
  bool try_submit_all(std::vector<Task> tasks);
  // How many tasks try_submit_all would take now (0 while stopping).
  size_t free_places() const;
  // Stops taking tasks, cancels the waiting ones, lets the running ones finish and joins. Idempotent.
  void stop();

  size_t depth() const;   // tasks waiting
  int busy() const;       // tasks running
  int workers() const { return nworkers_; }
  size_t capacity() const { return capacity_; }

 private:
  void run(int index);
  size_t free_places_locked() const;

  const size_t capacity_;
  const int nworkers_;
  std::function<void(int)> init_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  int busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace m2fp::service
