// tests/service/service_test_util.h: helpers shared by the tests of the application layer and the
// server above it (test_service_units.cpp, test_server_http.cpp).
#pragma once

#include <condition_variable>
#include <mutex>

namespace m2fp::test {

// Holds every thread that calls wait() until the gate is opened with set(true); set(false) closes
// it again for later callers. Used to keep pool workers (or the engine, through a hook) busy.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [this] { return open; });
  }
  void set(bool o) {
    {
      std::lock_guard<std::mutex> l(mu);
      open = o;
    }
    cv.notify_all();
  }
};

}  // namespace m2fp::test
