// service/side_by_side.h: independent tasks run side by side on the threads, each on one thread.
//
// The outputs of a large photo are a dozen steps (PNG encodings, the masks' COCO RLE, the outfit
// analysis) that each split poorly over the threads: split one after another, their barriers and
// uneven shares left the cores idle or spinning (bench_outputs, 12 MP, 2 threads: the same work took
// 500-510 ms of CPU split step by step, 480-490 ms as single-threaded steps). Here each task runs on
// one thread with OpenMP held to one thread inside it, and a free thread takes the next task.
#pragma once

#include <exception>
#include <functional>
#include <vector>

namespace m2fp::service {

using SideTask = std::function<void()>;

// Runs every task once on `workers` threads: this one and workers - 1 started here (workers <= 1:
// all on this one, in order). Each thread takes the next task not yet taken, so the list should put
// the long ones first (the short ones then fill in at the end). Inside a task, OpenMP parallel
// regions run on one thread; this thread's OpenMP thread count is restored afterwards. A task's
// exception is caught and returned at its index (null where it returned); the other tasks still run.
std::vector<std::exception_ptr> run_side_by_side(const std::vector<SideTask>& tasks, int workers);

}  // namespace m2fp::service
