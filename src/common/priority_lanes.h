// PriorityLanes: a queue ordered by the event's `priority` extension, with a bound on how long a
// low-priority event can be passed over. A consumer group's read-ahead and a stage's work queue
// both use it.
//
// Ten lanes, priority 0 (lowest) to 9 (highest); priorities outside that range are clamped.
// Within a lane, items leave in the order they were pushed (FIFO). Across lanes, the highest
// non-empty lane is served first, except for the anti-starvation rule:
//
//   A lane's head that has waited at least `max_wait` (now - its enqueued time) is overdue,
//   and overdue heads are served before anything else, the oldest first (ties: higher lane).
//
// Why waiting time and not a count of times passed over: the bound it gives is in the unit the
// rest of the runtime speaks (deadlines, lease times, Retry-After), it holds whatever the
// traffic of the higher lanes looks like, and it is deterministic from the `now` the caller
// passes. A low-priority event waits at most max_wait plus the time to serve the heads that
// became overdue before it. The cost: when the stage is overloaded for longer than max_wait,
// every head is overdue and service becomes oldest-first across lanes; priority then only
// reorders work younger than max_wait. Choose max_wait as the longest delay the lowest lane
// can accept. Duration::max() gives strict priority; zero gives plain FIFO by enqueued time.
//
// The enqueued time is the caller's to choose (arrival at the stage, or the event's publish
// time so that time spent upstream counts). Only heads are checked, so within a lane pass
// non-decreasing enqueued times for the bound to hold for every item.
//
// Not thread-safe: the caller serialises all calls (the stage runtime holds its queue lock).
// T needs only to be movable.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

namespace eventloom {

template <typename T>
class PriorityLanes {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    using Duration = std::chrono::steady_clock::duration;

    static constexpr int kLowestPriority = 0;
    static constexpr int kHighestPriority = 9;
    static constexpr int kLanes = kHighestPriority - kLowestPriority + 1;

    explicit PriorityLanes(Duration max_wait) : max_wait_(std::max(max_wait, Duration::zero())) {}

    // Appends `item` to the lane of `priority` (clamped to 0..9).
    void Push(T item, int priority, TimePoint enqueued) {
        const int lane = std::clamp(priority, kLowestPriority, kHighestPriority);
        lanes_[lane].push_back(Entry{std::move(item), enqueued});
        ++size_;
    }

    // Removes and returns the next item to serve at `now`; nullopt when empty.
    std::optional<T> Pop(TimePoint now) {
        const int lane = NextLane(now);
        if (lane < 0) return std::nullopt;
        if (lane != HighestNonEmptyLane()) ++promoted_;

        std::optional<T> item(std::move(lanes_[lane].front().item));
        lanes_[lane].pop_front();
        --size_;
        return item;
    }

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    // Items waiting at `priority` (clamped to 0..9).
    size_t lane_size(int priority) const {
        return lanes_[std::clamp(priority, kLowestPriority, kHighestPriority)].size();
    }
    // Pops that served a lower lane ahead of a higher one because its head was overdue; a
    // counter for metrics.
    uint64_t promoted() const { return promoted_; }
    Duration max_wait() const { return max_wait_; }

private:
    struct Entry {
        T item;
        TimePoint enqueued;
    };

    // The lane to serve at `now`, or -1 when every lane is empty.
    int NextLane(TimePoint now) const {
        int oldest_overdue = -1;
        for (int lane = kHighestPriority; lane >= kLowestPriority; --lane) {
            if (lanes_[lane].empty()) continue;
            const TimePoint enqueued = lanes_[lane].front().enqueued;
            // Compared as a difference: enqueued + max_wait overflows for Duration::max().
            if (now - enqueued < max_wait_) continue;
            if (oldest_overdue < 0 || enqueued < lanes_[oldest_overdue].front().enqueued) {
                oldest_overdue = lane;
            }
        }
        return oldest_overdue >= 0 ? oldest_overdue : HighestNonEmptyLane();
    }

    int HighestNonEmptyLane() const {
        for (int lane = kHighestPriority; lane >= kLowestPriority; --lane) {
            if (!lanes_[lane].empty()) return lane;
        }
        return -1;
    }

    Duration max_wait_;
    std::array<std::deque<Entry>, kLanes> lanes_;
    size_t size_ = 0;
    uint64_t promoted_ = 0;
};

}  // namespace eventloom
