#include "runtime/retry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

namespace eventloom {
namespace {

constexpr std::string_view kHintPrefix = "(retry after ";
constexpr std::string_view kHintSuffix = "ms)";

// Uniform in [0, 1) from the top 53 bits of one draw: the same on every standard library.
double UnitInterval(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Status RetryPolicy::Validate() const {
    if (max_attempts < 1) return InvalidArgumentError("retry max_attempts must be at least 1");
    if (initial_delay.count() < 0) {
        return InvalidArgumentError("retry initial_delay must not be negative");
    }
    if (max_delay < initial_delay) {
        return InvalidArgumentError("retry max_delay must not be below initial_delay");
    }
    if (!(multiplier >= 1.0) || !std::isfinite(multiplier)) {
        return InvalidArgumentError("retry multiplier must be a finite number, 1 or more");
    }
    if (!(jitter >= 0.0 && jitter <= 1.0)) {
        return InvalidArgumentError("retry jitter must be between 0 and 1");
    }
    return Status::Ok();
}

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int attempt,
                                       std::mt19937_64& rng) {
    const double cap = static_cast<double>(std::max<int64_t>(policy.max_delay.count(), 0));
    const double initial = static_cast<double>(std::max<int64_t>(policy.initial_delay.count(), 0));
    const double multiplier = policy.multiplier >= 1.0 ? policy.multiplier : 1.0;
    const double jitter = std::clamp(std::isnan(policy.jitter) ? 0.0 : policy.jitter, 0.0, 1.0);

    // pow() may reach infinity for large attempts; min() with the cap brings it back. A zero
    // initial delay stays zero (0 * infinity would be NaN).
    const double growth = std::pow(multiplier, std::max(attempt, 1) - 1);
    const double base = initial == 0 ? 0.0 : std::min(cap, initial * growth);

    // Always draw, even without jitter, so the generator advances the same way for any policy.
    const double u = UnitInterval(rng);
    const double delay = std::floor(base * (1.0 - jitter * u));
    return std::chrono::milliseconds(static_cast<int64_t>(delay));
}

std::string_view FailureActionName(FailureAction action) {
    switch (action) {
        case FailureAction::kRetry:
            return "retry";
        case FailureAction::kDeadLetter:
            return "dead_letter";
    }
    return "unknown";
}

FailureAction Classify(const Status& status, int attempt, const RetryPolicy& policy) {
    if (status.ok() || !status.retryable()) return FailureAction::kDeadLetter;
    if (attempt >= std::max(policy.max_attempts, 1)) return FailureAction::kDeadLetter;
    return FailureAction::kRetry;
}

std::chrono::milliseconds RetryAfterHint(const Status& status) {
    std::string_view message = status.message();
    if (!message.ends_with(kHintSuffix)) return std::chrono::milliseconds(0);
    message.remove_suffix(kHintSuffix.size());

    const size_t prefix = message.rfind(kHintPrefix);
    if (prefix == std::string_view::npos) return std::chrono::milliseconds(0);
    const std::string_view digits = message.substr(prefix + kHintPrefix.size());
    if (digits.empty()) return std::chrono::milliseconds(0);

    // from_chars accepts a leading '-'; a hint is a non-negative count of digits only.
    int64_t ms = 0;
    if (digits.front() < '0' || digits.front() > '9') return std::chrono::milliseconds(0);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
    if (ec != std::errc() || end != digits.data() + digits.size()) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(ms);
}

Status WithRetryAfter(const Status& status, std::chrono::milliseconds delay) {
    if (status.ok()) return status;
    std::string message = status.message();
    if (!message.empty()) message += ' ';
    message += kHintPrefix;
    message += std::to_string(std::max<int64_t>(delay.count(), 0));
    message += kHintSuffix;
    return Status(status.code(), std::move(message));
}

std::chrono::milliseconds RetryDelay(const Status& status, const RetryPolicy& policy, int attempt,
                                     std::mt19937_64& rng) {
    return std::max(BackoffDelay(policy, attempt, rng), RetryAfterHint(status));
}

}  // namespace eventloom
