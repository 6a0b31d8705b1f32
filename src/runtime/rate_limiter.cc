#include "runtime/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace eventloom {
namespace {

// Capacities, rates and weights: anything but a positive finite number counts as 0.
double PositiveOrZero(double value) { return value > 0 && std::isfinite(value) ? value : 0.0; }

}  // namespace

namespace rate_limiter_internal {

Bucket::Bucket(double capacity, double refill_per_second, Clock::TimePoint now)
    : capacity_(PositiveOrZero(capacity)),
      refill_per_second_(PositiveOrZero(refill_per_second)),
      full_at_(now),
      level_(capacity_) {}

Clock::Duration Bucket::TimeFor(double units) const {
    const double ns = units / refill_per_second_ * 1e9;
    if (!(ns < static_cast<double>(Clock::Duration::max().count()))) return Clock::Duration::max();
    return Clock::Duration(std::llround(ns));
}

double Bucket::LevelAt(Clock::TimePoint now) const {
    if (refill_per_second_ == 0) return level_;
    if (full_at_ <= now) return capacity_;
    return capacity_ - std::chrono::duration<double>(full_at_ - now).count() * refill_per_second_;
}

Clock::Duration Bucket::Wait(double weight, Clock::TimePoint now) const {
    const double need = std::min(weight, capacity_);
    if (refill_per_second_ == 0) {
        return level_ >= need ? Clock::Duration::zero() : Clock::Duration::max();
    }

    // Granted while the refill still owed is no more than the time it takes to refill what
    // the bucket may keep after the grant.
    const Clock::Duration owed = full_at_ - now;
    const Clock::Duration allowance = TimeFor(capacity_ - need);
    return owed > allowance ? owed - allowance : Clock::Duration::zero();
}

void Bucket::Take(double weight, Clock::TimePoint now) {
    if (refill_per_second_ == 0) {
        level_ -= weight;
        return;
    }
    full_at_ = SaturatingAdd(std::max(full_at_, now), TimeFor(weight));
}

void Bucket::Adjust(double delta, Clock::TimePoint now) {
    if (!std::isfinite(delta)) return;
    if (delta < 0) {
        Take(-delta, now);
    } else if (refill_per_second_ == 0) {
        level_ = std::min(capacity_, level_ + delta);
    } else {
        // Giving back moves the full instant earlier, but never before now (above capacity).
        full_at_ = std::max(now, std::max(full_at_, now) - TimeFor(delta));
    }
}

}  // namespace rate_limiter_internal

TokenBucket::TokenBucket(double capacity, double refill_per_second, const Clock* clock)
    : clock_(clock), bucket_(capacity, refill_per_second, clock->Now()) {}

std::optional<Clock::Duration> TokenBucket::TryAcquire(double weight) {
    weight = PositiveOrZero(weight);
    std::lock_guard lock(mu_);
    const Clock::TimePoint now = clock_->Now();
    const Clock::Duration wait = bucket_.Wait(weight, now);
    if (wait > Clock::Duration::zero()) return wait;
    bucket_.Take(weight, now);
    return std::nullopt;
}

void TokenBucket::Adjust(double delta) {
    std::lock_guard lock(mu_);
    bucket_.Adjust(delta, clock_->Now());
}

double TokenBucket::available() const {
    std::lock_guard lock(mu_);
    return bucket_.LevelAt(clock_->Now());
}

Status RateLimits::Validate() const {
    const struct {
        const char* name;
        double value;
    } fields[] = {
        {"requests_per_second", requests_per_second},
        {"requests_per_minute", requests_per_minute},
        {"tokens_per_minute", tokens_per_minute},
    };
    for (const auto& field : fields) {
        if (!(field.value >= 0) || !std::isfinite(field.value)) {
            return InvalidArgumentError(std::string("rate limit ") + field.name +
                                        " must be a finite number, 0 or more");
        }
    }
    return Status::Ok();
}

RateLimiter::RateLimiter(const RateLimits& limits, const Clock* clock)
    : clock_(clock), limits_(limits) {
    const Clock::TimePoint now = clock_->Now();
    // A limit that is not a positive finite number is no limit.
    if (PositiveOrZero(limits_.requests_per_second) > 0) {
        per_second_.emplace(limits_.requests_per_second, limits_.requests_per_second, now);
    }
    if (PositiveOrZero(limits_.requests_per_minute) > 0) {
        per_minute_.emplace(limits_.requests_per_minute, limits_.requests_per_minute / 60, now);
    }
    if (PositiveOrZero(limits_.tokens_per_minute) > 0) {
        tokens_.emplace(limits_.tokens_per_minute, limits_.tokens_per_minute / 60, now);
    }
}

std::optional<Clock::Duration> RateLimiter::TryAcquire(double weight) {
    weight = PositiveOrZero(weight);
    std::lock_guard lock(mu_);
    const Clock::TimePoint now = clock_->Now();

    // Ask every bucket first; take from none unless all of them grant.
    Clock::Duration wait = Clock::Duration::zero();
    if (per_second_) wait = std::max(wait, per_second_->Wait(1, now));
    if (per_minute_) wait = std::max(wait, per_minute_->Wait(1, now));
    if (tokens_) wait = std::max(wait, tokens_->Wait(weight, now));
    if (wait > Clock::Duration::zero()) return wait;

    if (per_second_) per_second_->Take(1, now);
    if (per_minute_) per_minute_->Take(1, now);
    if (tokens_) tokens_->Take(weight, now);
    return std::nullopt;
}

void RateLimiter::AdjustTokens(double delta) {
    std::lock_guard lock(mu_);
    if (tokens_) tokens_->Adjust(delta, clock_->Now());
}

}  // namespace eventloom
