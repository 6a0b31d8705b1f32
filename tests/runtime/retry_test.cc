// Backoff delays, the retry/dead-letter decision and the Retry-After convention.
#include "runtime/retry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <vector>

namespace eventloom {
namespace {

using std::chrono::milliseconds;

RetryPolicy NoJitter() {
    RetryPolicy policy;
    policy.jitter = 0;
    return policy;
}

TEST(BackoffDelay, GrowsByTheMultiplierWithoutJitter) {
    std::mt19937_64 rng(1);
    const RetryPolicy policy = NoJitter();
    const int64_t expected[] = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600};
    for (int attempt = 1; attempt <= 9; ++attempt) {
        SCOPED_TRACE(attempt);
        EXPECT_EQ(BackoffDelay(policy, attempt, rng), milliseconds(expected[attempt - 1]));
    }
}

TEST(BackoffDelay, IsCappedAtMaxDelay) {
    std::mt19937_64 rng(1);
    const RetryPolicy policy = NoJitter();
    for (int attempt : {10, 11, 64, 1100, 1 << 30}) {
        SCOPED_TRACE(attempt);
        EXPECT_EQ(BackoffDelay(policy, attempt, rng), policy.max_delay);
    }
}

TEST(BackoffDelay, FullJitterStaysBetweenZeroAndTheBase) {
    std::mt19937_64 rng(42);
    RetryPolicy policy;  // jitter = 1
    for (int attempt = 1; attempt <= 12; ++attempt) {
        SCOPED_TRACE(attempt);
        const milliseconds base = BackoffDelay(NoJitter(), attempt, rng);
        for (int draw = 0; draw < 500; ++draw) {
            const milliseconds delay = BackoffDelay(policy, attempt, rng);
            ASSERT_GE(delay, milliseconds(0));
            ASSERT_LE(delay, base);
        }
    }
}

TEST(BackoffDelay, PartialJitterKeepsTheUnjitteredShare) {
    std::mt19937_64 rng(7);
    RetryPolicy policy;
    policy.jitter = 0.25;
    for (int attempt = 1; attempt <= 12; ++attempt) {
        SCOPED_TRACE(attempt);
        const milliseconds base = BackoffDelay(NoJitter(), attempt, rng);
        for (int draw = 0; draw < 500; ++draw) {
            const milliseconds delay = BackoffDelay(policy, attempt, rng);
            ASSERT_GE(delay, base * 3 / 4);
            ASSERT_LE(delay, base);
        }
    }
}

TEST(BackoffDelay, JitterSpreadsTheDelays) {
    std::mt19937_64 rng(3);
    RetryPolicy policy;
    std::set<int64_t> distinct;
    for (int draw = 0; draw < 100; ++draw) distinct.insert(BackoffDelay(policy, 8, rng).count());
    EXPECT_GT(distinct.size(), 90u);
}

TEST(BackoffDelay, SameSeedGivesSameDelays) {
    std::mt19937_64 first(2024);
    std::mt19937_64 second(2024);
    RetryPolicy policy;
    for (int attempt = 1; attempt <= 20; ++attempt) {
        SCOPED_TRACE(attempt);
        EXPECT_EQ(BackoffDelay(policy, attempt, first), BackoffDelay(policy, attempt, second));
    }
}

TEST(BackoffDelay, AttemptBelowOneActsAsOne) {
    std::mt19937_64 rng(1);
    for (int attempt : {0, -1, -1000}) {
        SCOPED_TRACE(attempt);
        EXPECT_EQ(BackoffDelay(NoJitter(), attempt, rng), milliseconds(100));
    }
}

TEST(BackoffDelay, MultiplierBelowOneActsAsOne) {
    std::mt19937_64 rng(1);
    RetryPolicy policy = NoJitter();
    policy.multiplier = 0.5;
    EXPECT_EQ(BackoffDelay(policy, 6, rng), milliseconds(100));
}

TEST(Classify, FirstFailureActionFollowsTheCode) {
    struct Case {
        StatusCode code;
        FailureAction action;
    };
    // Every code, so that a code added to StatusCode without a decision here fails the test.
    const Case cases[] = {
        {StatusCode::kOk, FailureAction::kDeadLetter},
        {StatusCode::kCancelled, FailureAction::kDeadLetter},
        {StatusCode::kInvalidArgument, FailureAction::kDeadLetter},
        {StatusCode::kDeadlineExceeded, FailureAction::kRetry},
        {StatusCode::kNotFound, FailureAction::kDeadLetter},
        {StatusCode::kAlreadyExists, FailureAction::kDeadLetter},
        {StatusCode::kResourceExhausted, FailureAction::kRetry},
        {StatusCode::kFailedPrecondition, FailureAction::kDeadLetter},
        {StatusCode::kAborted, FailureAction::kRetry},
        {StatusCode::kOutOfRange, FailureAction::kDeadLetter},
        {StatusCode::kUnimplemented, FailureAction::kDeadLetter},
        {StatusCode::kInternal, FailureAction::kDeadLetter},
        {StatusCode::kUnavailable, FailureAction::kRetry},
        {StatusCode::kDataLoss, FailureAction::kDeadLetter},
    };
    ASSERT_EQ(std::size(cases), static_cast<size_t>(StatusCode::kDataLoss) + 1);
    for (const Case& c : cases) {
        SCOPED_TRACE(StatusCodeName(c.code));
        EXPECT_EQ(Classify(Status(c.code, "boom"), 1, RetryPolicy()), c.action);
    }
}

TEST(Classify, RetryableFailureDeadLettersOnTheLastAttempt) {
    RetryPolicy policy;
    policy.max_attempts = 3;
    const Status status = UnavailableError("model server down");
    EXPECT_EQ(Classify(status, 1, policy), FailureAction::kRetry);
    EXPECT_EQ(Classify(status, 2, policy), FailureAction::kRetry);
    EXPECT_EQ(Classify(status, 3, policy), FailureAction::kDeadLetter);
    EXPECT_EQ(Classify(status, 4, policy), FailureAction::kDeadLetter);
}

TEST(Classify, MaxAttemptsBelowOneNeverRetries) {
    RetryPolicy policy;
    policy.max_attempts = 0;
    EXPECT_EQ(Classify(UnavailableError("x"), 1, policy), FailureAction::kDeadLetter);
}

TEST(FailureActionName, SpellsEachAction) {
    EXPECT_EQ(FailureActionName(FailureAction::kRetry), "retry");
    EXPECT_EQ(FailureActionName(FailureAction::kDeadLetter), "dead_letter");
}

TEST(RetryAfterHint, ParsesOnlyTheTrailingConvention) {
    struct Case {
        const char* message;
        int64_t ms;
    };
    const Case cases[] = {
        {"rate limited (retry after 1500ms)", 1500},
        {"(retry after 0ms)", 0},
        {"first (retry after 1ms) then (retry after 2ms)", 2},
        {"", 0},
        {"rate limited", 0},
        {"rate limited retry after 1500ms", 0},
        {"(retry after 1500ms) and more", 0},
        {"(retry after 1500 ms)", 0},
        {"(retry after 1.5ms)", 0},
        {"(retry after -5ms)", 0},
        {"(retry after +5ms)", 0},
        {"(retry after ms)", 0},
        {"(retry after 1500s)", 0},
        {"(retry after 99999999999999999999999ms)", 0},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.message);
        EXPECT_EQ(RetryAfterHint(UnavailableError(c.message)), milliseconds(c.ms));
    }
}

TEST(WithRetryAfter, AppendsAHintThatSurvivesContext) {
    const Status status =
        WithRetryAfter(ResourceExhaustedError("429 from backend"), milliseconds(750));
    EXPECT_EQ(status.message(), "429 from backend (retry after 750ms)");
    EXPECT_EQ(RetryAfterHint(status.WithContext("stage llm")), milliseconds(750));
}

TEST(WithRetryAfter, LeavesAnOkStatusAlone) {
    EXPECT_TRUE(WithRetryAfter(Status::Ok(), milliseconds(750)).ok());
}

TEST(RetryDelay, TakesTheLongerOfBackoffAndHint) {
    std::mt19937_64 rng(1);
    const RetryPolicy policy = NoJitter();
    const Status plain = UnavailableError("down");
    EXPECT_EQ(RetryDelay(plain, policy, 3, rng), milliseconds(400));
    EXPECT_EQ(RetryDelay(WithRetryAfter(plain, milliseconds(50)), policy, 3, rng),
              milliseconds(400));
    EXPECT_EQ(RetryDelay(WithRetryAfter(plain, milliseconds(5000)), policy, 3, rng),
              milliseconds(5000));
}

TEST(RetryDelay, HintIsNotCappedByMaxDelay) {
    std::mt19937_64 rng(1);
    const Status status = WithRetryAfter(UnavailableError("down"), milliseconds(120000));
    EXPECT_EQ(RetryDelay(status, RetryPolicy(), 1, rng), milliseconds(120000));
}

TEST(RetryPolicy, ValidateRefusesFieldsOutOfRange) {
    struct Case {
        const char* name;
        void (*edit)(RetryPolicy&);
        bool ok;
    };
    const Case cases[] = {
        {"defaults", [](RetryPolicy&) {}, true},
        {"max_attempts 1", [](RetryPolicy& p) { p.max_attempts = 1; }, true},
        {"max_attempts 0", [](RetryPolicy& p) { p.max_attempts = 0; }, false},
        {"initial_delay -1", [](RetryPolicy& p) { p.initial_delay = milliseconds(-1); }, false},
        {"max_delay below initial", [](RetryPolicy& p) { p.max_delay = milliseconds(50); }, false},
        {"multiplier 1", [](RetryPolicy& p) { p.multiplier = 1; }, true},
        {"multiplier 0.9", [](RetryPolicy& p) { p.multiplier = 0.9; }, false},
        {"multiplier inf", [](RetryPolicy& p) { p.multiplier = HUGE_VAL; }, false},
        {"jitter 0", [](RetryPolicy& p) { p.jitter = 0; }, true},
        {"jitter 1.5", [](RetryPolicy& p) { p.jitter = 1.5; }, false},
        {"jitter -0.1", [](RetryPolicy& p) { p.jitter = -0.1; }, false},
        {"jitter nan", [](RetryPolicy& p) { p.jitter = std::nan(""); }, false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        RetryPolicy policy;
        c.edit(policy);
        const Status status = policy.Validate();
        EXPECT_EQ(status.ok(), c.ok) << status.ToString();
        if (!c.ok) {
            EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
        }
    }
}

}  // namespace
}  // namespace eventloom
