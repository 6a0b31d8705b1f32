// Retry decisions for failed deliveries: how long to wait before the next attempt (exponential
// backoff with jitter) and whether to retry at all or dead-letter the event.
//
// An attempt is one delivery of an event to a stage; attempts are numbered from 1. The policy's
// max_attempts counts every attempt, the first included: with the default 5, attempts 1-4 may
// be followed by a retry and a failure of attempt 5 dead-letters the event.
//
// The retry decision comes from the Status code (IsRetryable in eventloom/status.h); this file
// adds the attempt budget and the delay. A server may also say when to come back (HTTP 429 or
// 503 with Retry-After): the component that sees it appends "(retry after 1500ms)" to the
// Status message with WithRetryAfter(), and RetryDelay() honours it.
//
// All functions are pure, or use only the generator passed in; they are thread-safe as long as
// each thread passes its own generator.
#pragma once

#include <chrono>
#include <random>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom {

struct RetryPolicy {
    // Attempts in all, the first included. Values below 1 act as 1 (never retry).
    int max_attempts = 5;
    // Delay before the second attempt.
    std::chrono::milliseconds initial_delay{100};
    // No backoff delay is longer than this (a server's Retry-After may be; see RetryDelay).
    std::chrono::milliseconds max_delay{30000};
    // Growth of the delay per attempt. Values below 1 act as 1.
    double multiplier = 2.0;
    // Fraction of the delay that is randomised: 0 = none (exactly the exponential delay),
    // 1 = full jitter (uniform in (0, delay]). Clamped to [0, 1].
    double jitter = 1.0;

    // InvalidArgument naming the first field out of range; for configuration loading. The
    // functions below accept any policy and clamp instead.
    Status Validate() const;
};

// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed:
//   base  = min(max_delay, initial_delay * multiplier^(attempt - 1))
//   delay = base * (1 - jitter * u), u uniform in [0, 1) drawn from `rng`
// rounded down to whole milliseconds. The draw uses the raw 64-bit output of `rng`, not a
// std::uniform_real_distribution, so a seed gives the same delays on every standard library.
// Attempts below 1 act as 1.
std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int attempt,
                                       std::mt19937_64& rng);

enum class FailureAction {
    kRetry,       // nack: deliver again after a delay
    kDeadLetter,  // term: send to the dead-letter topic with the Status as the reason
};

// "retry" or "dead_letter": the spelling used in logs and metrics.
std::string_view FailureActionName(FailureAction action);

// What to do after attempt `attempt` (1-based) failed with `status`: retry while the code is
// retryable (Unavailable, DeadlineExceeded, ResourceExhausted, Aborted) and attempts remain;
// dead-letter at once for every other code. An OK status is a caller bug: it dead-letters, so
// a mistake never loops.
//
// Cancelled is not retryable and so dead-letters. A stage whose handler was cancelled because
// the worker is shutting down should release the delivery (nack without counting it) before
// asking here; only a cancellation that is the event's own outcome belongs to Classify.
FailureAction Classify(const Status& status, int attempt, const RetryPolicy& policy);

// The wait a server asked for, carried in the Status message by the convention
//   "<message> (retry after <N>ms)"
// at the very end of the message (context added with WithContext is prefixed, so the suffix
// survives). Zero when the message does not end that way or N does not fit.
std::chrono::milliseconds RetryAfterHint(const Status& status);

// `status` with " (retry after <N>ms)" appended to its message; an OK status is returned
// unchanged. Negative delays are written as 0.
Status WithRetryAfter(const Status& status, std::chrono::milliseconds delay);

// The delay before the next attempt: the backoff delay, or the server's Retry-After hint when
// that is longer. The hint is not capped by max_delay: coming back earlier than the server
// asked only earns another refusal.
std::chrono::milliseconds RetryDelay(const Status& status, const RetryPolicy& policy, int attempt,
                                     std::mt19937_64& rng);

}  // namespace eventloom
