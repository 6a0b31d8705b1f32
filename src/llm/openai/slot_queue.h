// SlotQueue: the concurrency limit of the openai backend. At most `slots` requests hold a slot
// at once; the others wait, and a freed slot goes to the waiter with the highest priority,
// first come first served within a priority. A wait ends early, without a slot, when the
// caller's stop token is triggered (Cancelled) or its deadline passes (DeadlineExceeded).
//
// Also the source of LlmLoad: slots held, requests waiting, and the estimated prompt tokens of
// the waiting requests and of held slots whose prompt the server has not finished yet.
//
// Strict priority: a steady stream of high-priority requests can hold back a low-priority one
// until its deadline. The backend leaves aging to the runtime's PriorityLanes in front of it.
//
// Thread-safe. A Slot must not outlive its queue.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <stop_token>
#include <string_view>
#include <utility>

#include "common/clock.h"
#include "eventloom/llm.h"
#include "eventloom/status.h"

namespace eventloom::openai {

class SlotQueue {
public:
    // A held slot, given back when destroyed. Move-only.
    class Slot {
    public:
        Slot() = default;
        Slot(Slot&& other) noexcept { *this = std::move(other); }
        Slot& operator=(Slot&& other) noexcept;
        ~Slot() { Release(); }

        // The server has started answering: the prompt no longer counts as pending work.
        void PromptDone();
        void Release();

    private:
        friend class SlotQueue;
        Slot(SlotQueue* queue, int64_t prompt_tokens)
            : queue_(queue), prompt_tokens_(prompt_tokens) {}

        SlotQueue* queue_ = nullptr;  // null once released
        int64_t prompt_tokens_ = 0;   // still counted in the load; 0 once the prompt is done
    };

    explicit SlotQueue(int slots);

    SlotQueue(const SlotQueue&) = delete;
    SlotQueue& operator=(const SlotQueue&) = delete;

    // Waits for a slot. `prompt_tokens` is the request's estimate, for Load(). `what` names the
    // request in the error.
    Result<Slot> Acquire(int priority, int64_t prompt_tokens, std::stop_token stop,
                         Clock::TimePoint deadline, std::string_view what);

    LlmLoad Load() const;

private:
    using Ticket = std::pair<int, uint64_t>;  // (-priority, arrival): the set's first is next

    void Release(int64_t prompt_tokens);
    void PromptDone(int64_t prompt_tokens);

    const int slots_;
    mutable std::mutex mu_;
    std::condition_variable_any cv_;
    std::set<Ticket> waiting_;    // guarded by mu_
    uint64_t next_arrival_ = 0;   // guarded by mu_
    int busy_ = 0;                // guarded by mu_
    int64_t pending_tokens_ = 0;  // guarded by mu_
};

enum class WaitOutcome { kReady, kStopped, kDeadline };

// Waits on `cv` (with `lock` held on its mutex) until `ready()` is true, `stop` is triggered or
// `deadline` passes, whichever is first; `ready` is checked first. Any deadline works,
// including TimePoint::max().
template <typename Lock, typename Predicate>
WaitOutcome WaitUntil(std::condition_variable_any& cv, Lock& lock, std::stop_token stop,
                      Clock::TimePoint deadline, Predicate ready) {
    while (true) {
        if (ready()) return WaitOutcome::kReady;
        if (stop.stop_requested()) return WaitOutcome::kStopped;
        const Clock::TimePoint now = Clock::Real()->Now();
        if (now >= deadline) return WaitOutcome::kDeadline;

        // Wake up at least hourly: far deadlines (max()) overflow some wait implementations.
        const Clock::TimePoint until = std::min(deadline, now + std::chrono::hours(1));
        cv.wait_until(lock, stop, until, ready);
    }
}

// Sleeps until `until`, or less when `stop` is triggered or `deadline` comes first.
WaitOutcome SleepUntil(Clock::TimePoint until, std::stop_token stop, Clock::TimePoint deadline);

}  // namespace eventloom::openai
