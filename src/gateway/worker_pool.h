// WorkerPool: a fixed set of threads running posted tasks in order of posting. The gateway
// runs what blocks (publishing, reading the job store) here, never on its I/O threads.
//
// Thread-safety: Post may be called from any thread, tasks included; Stop from any thread but
// a task's (it joins the threads). Tasks are owned by the pool until they run; Stop runs every
// task already posted, then joins the threads; Post after Stop refuses the task.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace eventloom::gateway::internal {

class WorkerPool {
public:
    explicit WorkerPool(int threads);
    ~WorkerPool();  // Stop()
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // False (and `task` is dropped) once Stop has begun.
    bool Post(std::function<void()> task);
    // Runs the tasks already posted, then joins the threads. Idempotent; not from a task.
    void Stop();

private:
    void Run();

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;  // guarded by mu_
    bool stopping_ = false;                    // guarded by mu_
    std::vector<std::thread> threads_;
};

}  // namespace eventloom::gateway::internal
