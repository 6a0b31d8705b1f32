#include "runtime/circuit_breaker.h"

#include <algorithm>

namespace eventloom {
namespace {

// open_for in the clock's unit, clamped so that it neither overflows nor goes negative.
Clock::Duration OpenFor(std::chrono::milliseconds open_for) {
    if (open_for.count() <= 0) return Clock::Duration::zero();
    if (open_for >= std::chrono::floor<std::chrono::milliseconds>(Clock::Duration::max())) {
        return Clock::Duration::max();
    }
    return open_for;
}

}  // namespace

Status CircuitBreakerOptions::Validate() const {
    if (failure_threshold < 1) {
        return InvalidArgumentError("circuit breaker failure_threshold must be at least 1");
    }
    if (open_for.count() < 0) {
        return InvalidArgumentError("circuit breaker open_for must not be negative");
    }
    if (half_open_probes < 1) {
        return InvalidArgumentError("circuit breaker half_open_probes must be at least 1");
    }
    return Status::Ok();
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerOptions& options, const Clock* clock)
    : clock_(clock),
      failure_threshold_(std::max(options.failure_threshold, 1)),
      open_for_(OpenFor(options.open_for)),
      half_open_probes_(std::max(options.half_open_probes, 1)) {}

bool CircuitBreaker::Allow() {
    std::lock_guard lock(mu_);
    const Clock::TimePoint now = clock_->Now();
    AdvanceTo(now);
    if (state_ == State::kClosed) return true;
    if (state_ == State::kOpen) return false;

    // Probes that have been out a whole open_for without an outcome are presumed lost.
    if (probes_out_ >= half_open_probes_) {
        if (now - round_started_ < open_for_) return false;
        probes_out_ = 0;
        round_started_ = now;
    }
    ++probes_out_;
    return true;
}

void CircuitBreaker::RecordSuccess() {
    std::lock_guard lock(mu_);
    AdvanceTo(clock_->Now());
    // While open, a success can only be a late result from before the breaker opened.
    if (state_ == State::kOpen) return;
    state_ = State::kClosed;
    consecutive_failures_ = 0;
}

void CircuitBreaker::RecordFailure() {
    std::lock_guard lock(mu_);
    const Clock::TimePoint now = clock_->Now();
    AdvanceTo(now);
    switch (state_) {
        case State::kClosed:
            if (++consecutive_failures_ >= failure_threshold_) Open(now);
            break;
        case State::kOpen:
            // A late result; extending open_for for it would punish the backend twice.
            break;
        case State::kHalfOpen:
            Open(now);
            break;
    }
}

CircuitBreaker::State CircuitBreaker::state() const {
    std::lock_guard lock(mu_);
    if (state_ == State::kOpen && clock_->Now() - opened_at_ >= open_for_) return State::kHalfOpen;
    return state_;
}

std::chrono::milliseconds CircuitBreaker::RetryIn() const {
    std::lock_guard lock(mu_);
    const Clock::TimePoint now = clock_->Now();
    // Written as open_for - elapsed: opened_at + open_for could overflow.
    Clock::Duration left = Clock::Duration::zero();
    if (state_ == State::kOpen) {
        left = open_for_ - (now - opened_at_);
    } else if (state_ == State::kHalfOpen && probes_out_ >= half_open_probes_) {
        left = open_for_ - (now - round_started_);
    }
    if (left <= Clock::Duration::zero()) return std::chrono::milliseconds(0);
    return std::chrono::ceil<std::chrono::milliseconds>(left);
}

std::string_view CircuitBreaker::StateName(State state) {
    switch (state) {
        case State::kClosed:
            return "closed";
        case State::kOpen:
            return "open";
        case State::kHalfOpen:
            return "half_open";
    }
    return "unknown";
}

void CircuitBreaker::AdvanceTo(Clock::TimePoint now) {
    if (state_ != State::kOpen || now - opened_at_ < open_for_) return;
    state_ = State::kHalfOpen;
    probes_out_ = 0;
    round_started_ = now;
}

void CircuitBreaker::Open(Clock::TimePoint now) {
    state_ = State::kOpen;
    opened_at_ = now;
    consecutive_failures_ = 0;
    probes_out_ = 0;
}

}  // namespace eventloom
