// Rate limits for the calls a stage makes: a token bucket, and a limiter that combines the
// request and token limits of one backend (requests per second, requests per minute, LLM
// tokens per minute).
//
// Neither blocks. TryAcquire() either grants at once (nullopt) or says how long to wait before
// asking again; the caller decides whether to wait, nack the delivery with that delay, or try
// another backend. The wait is exact for a caller alone on the limiter; with competitors,
// asking again after it may find the capacity taken and get a new wait.
//
// Weights above the capacity. A request heavier than the bucket holds (a 5000-token prompt
// against a 4000-token-per-minute limit) could never fit, so it would be refused forever.
// Instead it is granted once the bucket is full, and the bucket goes into debt: its level
// becomes negative, and nothing else is granted until refill has paid the debt back. The
// long-run rate is kept (5000 tokens cost 1.25 minutes of refill), no request starves, and
// the burst allowance is the only thing given up, once.
//
// Both classes are thread-safe. They read time from a Clock that they do not own and that must
// outlive them.
#pragma once

#include <mutex>
#include <optional>

#include "common/clock.h"
#include "eventloom/status.h"

namespace eventloom {

namespace rate_limiter_internal {

// The arithmetic of one bucket, without a lock. Starts full.
//
// With a refill rate, the state is the instant the bucket will be full again (the theoretical
// arrival time of the generic cell rate algorithm): the level at `t` is
// capacity - (full_at - t) * rate. Grants and waits are then computed in whole nanoseconds
// from one instant rather than accumulated in floating point, so a wait is exact: asking
// again after it grants.
class Bucket {
public:
    Bucket(double capacity, double refill_per_second, Clock::TimePoint now);

    // The level at `now`; negative in debt.
    double LevelAt(Clock::TimePoint now) const;
    // How long from `now` until `weight` can be taken: zero when it can be now;
    // Duration::max() when it never can (no refill).
    Clock::Duration Wait(double weight, Clock::TimePoint now) const;
    void Take(double weight, Clock::TimePoint now);
    // Adds `delta` units (negative: takes), never above capacity.
    void Adjust(double delta, Clock::TimePoint now);

    double capacity() const { return capacity_; }
    double refill_per_second() const { return refill_per_second_; }

private:
    // The refill time of `units`, rounded to the nanosecond, saturating.
    Clock::Duration TimeFor(double units) const;

    double capacity_;
    double refill_per_second_;
    Clock::TimePoint full_at_;  // with refill
    double level_ = 0;          // without refill
};

}  // namespace rate_limiter_internal

// A token bucket: holds up to `capacity` units (the burst), refilled continuously at
// `refill_per_second`, starting full. A request of weight w is granted when the level is at
// least min(w, capacity), and then takes w (see "Weights above the capacity" above).
//
// Negative, infinite or NaN weights count as 0. A capacity of 0 allows no burst: each request is
// granted only when any debt is paid. A refill rate of 0 or less never refills. Time running
// backwards refills nothing.
class TokenBucket {
public:
    TokenBucket(double capacity, double refill_per_second, const Clock* clock = Clock::Real());

    TokenBucket(const TokenBucket&) = delete;
    TokenBucket& operator=(const TokenBucket&) = delete;

    // Grants `weight` (nullopt) or returns how long until it could be granted.
    std::optional<Clock::Duration> TryAcquire(double weight = 1.0);

    // Corrects an earlier grant once the real cost is known (an LLM call's actual token count
    // against its estimate): a positive delta gives units back, capped at capacity; a negative
    // one takes more, possibly into debt.
    void Adjust(double delta);

    // The level now; negative while in debt.
    double available() const;
    double capacity() const { return bucket_.capacity(); }
    double refill_per_second() const { return bucket_.refill_per_second(); }

private:
    const Clock* clock_;
    mutable std::mutex mu_;
    rate_limiter_internal::Bucket bucket_;  // guarded by mu_
};

// The limits of one backend; 0 means no limit of that kind. Each limit is a bucket whose
// capacity is one window's worth (requests_per_minute = 60 allows a burst of 60, refilled at
// one a second).
struct RateLimits {
    double requests_per_second = 0;
    double requests_per_minute = 0;
    // The request's weight (an LLM call's prompt plus its expected completion) per minute.
    double tokens_per_minute = 0;

    // InvalidArgument when a limit is negative, infinite or not a number; for configuration
    // loading. RateLimiter treats such a limit as no limit.
    Status Validate() const;
};

// Several buckets granted together: a request counts 1 against each request limit and its
// weight against the token limit, and is granted only when every bucket can grant it. When
// one refuses, none is touched (no partial consumption), and the wait returned is the longest
// of the buckets' waits, after which all of them could grant.
class RateLimiter {
public:
    explicit RateLimiter(const RateLimits& limits, const Clock* clock = Clock::Real());

    RateLimiter(const RateLimiter&) = delete;
    RateLimiter& operator=(const RateLimiter&) = delete;

    // Grants one request of `weight` tokens on every limit (nullopt), or returns how long until
    // all of them could grant it. With no limits set, always grants.
    std::optional<Clock::Duration> TryAcquire(double weight = 0);

    // Corrects the token limit after the fact, as TokenBucket::Adjust. No-op without one.
    void AdjustTokens(double delta);

    const RateLimits& limits() const { return limits_; }

private:
    const Clock* clock_;
    const RateLimits limits_;
    std::mutex mu_;
    // Guarded by mu_; absent when the limit is 0.
    std::optional<rate_limiter_internal::Bucket> per_second_;
    std::optional<rate_limiter_internal::Bucket> per_minute_;
    std::optional<rate_limiter_internal::Bucket> tokens_;
};

}  // namespace eventloom
