// Clock: where time-based components (rate limiters, circuit breakers, batchers) read "now".
//
// Everything in eventloom that waits, expires or refills takes a Clock (or a `now` argument)
// instead of calling std::chrono::steady_clock directly, so its behaviour can be tested by
// moving a ManualClock instead of sleeping.
//
// Contract: Now() is monotonic for the real clock. Implementations must be thread-safe; both
// classes here are. A component holding a `const Clock*` does not own it: the clock must
// outlive the component. Clock::Real() lives for the whole process.
#pragma once

#include <atomic>
#include <chrono>

namespace eventloom {

class Clock {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    using Duration = std::chrono::steady_clock::duration;

    virtual ~Clock() = default;

    virtual TimePoint Now() const = 0;

    // The process-wide std::chrono::steady_clock. Never null, never destroyed.
    static Clock* Real();
};

// Test double: a clock that only moves when told to. Also meant for embedders' tests.
//
// Starts at a fixed instant a day after the steady clock's epoch rather than at the epoch, so
// code that mistakes a zero time_point for "never" shows up in tests. Thread-safe: any thread
// may read or move it.
class ManualClock final : public Clock {
public:
    static constexpr TimePoint kStart = TimePoint(std::chrono::hours(24));

    explicit ManualClock(TimePoint start = kStart) : ticks_(start.time_since_epoch().count()) {}

    TimePoint Now() const override {
        return TimePoint(Duration(ticks_.load(std::memory_order_acquire)));
    }

    // Moves the clock forward by `d` (a real steady clock never moves back; a negative `d`
    // does, for tests of how a component copes).
    void Advance(Duration d) { ticks_.fetch_add(d.count(), std::memory_order_acq_rel); }

    // Moves the clock to `t`, forward or back.
    void Set(TimePoint t) { ticks_.store(t.time_since_epoch().count(), std::memory_order_release); }

private:
    std::atomic<Duration::rep> ticks_;
};

// `t + d`, clamped to TimePoint::max() instead of overflowing; for deadlines built from
// "forever" durations such as Duration::max(). REQUIRES: d >= 0.
inline Clock::TimePoint SaturatingAdd(Clock::TimePoint t, Clock::Duration d) {
    // Below the epoch, t + d cannot overflow; above it, max() - t cannot.
    if (t.time_since_epoch().count() > 0 && d > Clock::TimePoint::max() - t) {
        return Clock::TimePoint::max();
    }
    return t + d;
}

namespace clock_internal {

class SteadyClock final : public Clock {
public:
    TimePoint Now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace clock_internal

inline Clock* Clock::Real() {
    // Never destroyed, so components used from static destructors can still read it.
    static auto* clock = new clock_internal::SteadyClock();
    return clock;
}

}  // namespace eventloom
