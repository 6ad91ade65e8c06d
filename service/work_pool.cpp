// service/work_pool.cpp: worker threads and the bounded task queue.
#include "service/work_pool.h"

#include <algorithm>
#include <stdexcept>

namespace m2fp::service {

WorkPool::WorkPool(int workers, size_t capacity, std::function<void(int)> thread_init)
    : capacity_(capacity), nworkers_(workers), init_(std::move(thread_init)) {
  if (workers < 1) throw std::invalid_argument("WorkPool: workers must be >= 1, got " + std::to_string(workers));
  threads_.reserve((size_t)workers);
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { run(i); });
}

WorkPool::~WorkPool() { stop(); }

// A task for a free worker (started or not yet) never counts against the waiting capacity: the k-th
// task more is taken while idle workers outnumber the tasks queued before it, or the queue is below
// capacity, i.e. while queue size < max(idle workers, capacity).
size_t WorkPool::free_places_locked() const {
  if (stopping_) return 0;
  const size_t idle = (size_t)(nworkers_ - busy_);
  const size_t room = std::max(idle, capacity_);
  return room > queue_.size() ? room - queue_.size() : 0;
}

size_t WorkPool::free_places() const {
  std::lock_guard<std::mutex> lock(mu_);
  return free_places_locked();
}

bool WorkPool::try_submit(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_places_locked() == 0) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

bool WorkPool::try_submit_all(std::vector<Task> tasks) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || tasks.size() > free_places_locked()) return false;
    for (Task& t : tasks) queue_.push_back(std::move(t));
  }
  cv_.notify_all();
  return true;
}

void WorkPool::stop() {
  std::deque<Task> cancelled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    cancelled.swap(queue_);
  }
  cv_.notify_all();
  for (Task& t : cancelled) t(true);
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

size_t WorkPool::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

int WorkPool::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

void WorkPool::run(int index) {
  if (init_) init_(index);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    Task task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    try {
      task(false);  // tasks report their own errors; anything escaping is dropped, not fatal
    } catch (...) {
    }
    lock.lock();
    --busy_;
  }
}

}  // namespace m2fp::service
