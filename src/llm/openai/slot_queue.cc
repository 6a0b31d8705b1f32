#include "llm/openai/slot_queue.h"

#include <algorithm>
#include <string>

namespace eventloom::openai {

SlotQueue::Slot& SlotQueue::Slot::operator=(Slot&& other) noexcept {
    if (this != &other) {
        Release();
        queue_ = std::exchange(other.queue_, nullptr);
        prompt_tokens_ = std::exchange(other.prompt_tokens_, 0);
    }
    return *this;
}

void SlotQueue::Slot::PromptDone() {
    if (queue_ == nullptr || prompt_tokens_ == 0) return;
    queue_->PromptDone(std::exchange(prompt_tokens_, 0));
}

void SlotQueue::Slot::Release() {
    if (queue_ == nullptr) return;
    std::exchange(queue_, nullptr)->Release(std::exchange(prompt_tokens_, 0));
}

SlotQueue::SlotQueue(int slots) : slots_(std::max(slots, 1)) {}

Result<SlotQueue::Slot> SlotQueue::Acquire(int priority, int64_t prompt_tokens,
                                           std::stop_token stop, Clock::TimePoint deadline,
                                           std::string_view what) {
    std::unique_lock lock(mu_);
    const Ticket ticket{-priority, next_arrival_++};
    waiting_.insert(ticket);
    pending_tokens_ += prompt_tokens;

    // The first ticket takes the next free slot; everyone re-checks when one is freed.
    const WaitOutcome outcome = WaitUntil(
        cv_, lock, stop, deadline, [&] { return busy_ < slots_ && *waiting_.begin() == ticket; });
    waiting_.erase(ticket);
    if (outcome != WaitOutcome::kReady) {
        pending_tokens_ -= prompt_tokens;
        // Whoever was behind this ticket may be first now.
        cv_.notify_all();
        if (outcome == WaitOutcome::kStopped) {
            return CancelledError(std::string(what) + ": cancelled while waiting for a slot");
        }
        return DeadlineExceededError(std::string(what) + ": deadline passed waiting for a slot (" +
                                     std::to_string(slots_) + " in use)");
    }

    ++busy_;
    // With several slots free, the next waiter may go too.
    cv_.notify_all();
    return Slot(this, prompt_tokens);
}

LlmLoad SlotQueue::Load() const {
    std::lock_guard lock(mu_);
    LlmLoad load;
    load.slots = slots_;
    load.busy_slots = busy_;
    load.queued = static_cast<int>(waiting_.size());
    load.queued_prompt_tokens = pending_tokens_;
    return load;
}

void SlotQueue::Release(int64_t prompt_tokens) {
    std::lock_guard lock(mu_);
    --busy_;
    pending_tokens_ -= prompt_tokens;
    cv_.notify_all();
}

void SlotQueue::PromptDone(int64_t prompt_tokens) {
    std::lock_guard lock(mu_);
    pending_tokens_ -= prompt_tokens;
}

WaitOutcome SleepUntil(Clock::TimePoint until, std::stop_token stop, Clock::TimePoint deadline) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    const WaitOutcome outcome =
        WaitUntil(cv, lock, stop, std::min(until, deadline), [] { return false; });
    if (outcome == WaitOutcome::kDeadline && until < deadline) return WaitOutcome::kReady;
    return outcome;
}

}  // namespace eventloom::openai
