// A circuit breaker in front of one backend (a model server, a webhook target): after a run of
// failures it stops calls for a while instead of piling more load on a backend that is down.
//
//   closed     every call is allowed; `failure_threshold` consecutive failures open it
//              (a success resets the count).
//   open       no call is allowed for `open_for`; Allow() is false and RetryIn() says how long
//              is left, which the runtime uses as the nack delay of the refused delivery.
//   half_open  after open_for, up to `half_open_probes` calls are let through as probes. The
//              first success closes the breaker; a failure opens it again for open_for.
//
// The caller reports the outcome of every allowed call with RecordSuccess or RecordFailure.
// Only failures that say something about the backend should be recorded (Unavailable,
// DeadlineExceeded, ...); an InvalidArgument caused by the event itself is not the backend's
// fault.
//
// Outcomes are not tied to the Allow() that let the call through, which keeps the API to a
// bool, at two costs, both bounded by open_for:
//   - Probes that never report (a crashed caller) would hold the breaker half-open forever, so
//     once every probe has been out for open_for without an outcome, a new round is allowed.
//   - A result reported late, from a call allowed before the breaker opened, is ignored while
//     open, and counts as a probe outcome if it arrives when half-open.
//
// Thread-safe. Reads time from a Clock that it does not own and that must outlive it.
#pragma once

#include <chrono>
#include <mutex>
#include <string_view>

#include "common/clock.h"
#include "eventloom/status.h"

namespace eventloom {

struct CircuitBreakerOptions {
    // Consecutive failures that open a closed breaker. Values below 1 act as 1.
    int failure_threshold = 5;
    // How long an open breaker refuses calls before probing. Negative values act as 0.
    std::chrono::milliseconds open_for{30000};
    // Calls let through at once while half-open. Values below 1 act as 1.
    int half_open_probes = 1;

    // InvalidArgument naming the first field out of range; for configuration loading.
    Status Validate() const;
};

class CircuitBreaker {
public:
    enum class State { kClosed, kOpen, kHalfOpen };

    explicit CircuitBreaker(const CircuitBreakerOptions& options,
                            const Clock* clock = Clock::Real());

    CircuitBreaker(const CircuitBreaker&) = delete;
    CircuitBreaker& operator=(const CircuitBreaker&) = delete;

    // True when a call may go ahead now. While half-open, each true uses up one probe, so call
    // it only when about to make the call.
    bool Allow();

    void RecordSuccess();
    void RecordFailure();

    // The state now: an open breaker whose open_for has passed reports half_open.
    State state() const;

    // How long until Allow() could return true: zero when it would now; otherwise the time
    // left open (or, half-open with every probe out, until a new round of probes), rounded up
    // to whole milliseconds.
    std::chrono::milliseconds RetryIn() const;

    // "closed", "open", "half_open": the spelling used in logs and metrics.
    static std::string_view StateName(State state);

private:
    // Moves an open breaker whose open_for has passed to half-open. REQUIRES: mu_ held.
    void AdvanceTo(Clock::TimePoint now);
    // REQUIRES: mu_ held.
    void Open(Clock::TimePoint now);

    const Clock* clock_;
    const int failure_threshold_;
    const Clock::Duration open_for_;
    const int half_open_probes_;

    mutable std::mutex mu_;
    // Guarded by mu_. state_ is the state as of the last call; an open breaker becomes
    // half-open on the first call after open_for (state() already reports it).
    State state_ = State::kClosed;
    int consecutive_failures_ = 0;
    Clock::TimePoint opened_at_;
    // Half-open: probes handed out in the current round, and when the round started.
    int probes_out_ = 0;
    Clock::TimePoint round_started_;
};

}  // namespace eventloom
