// The circuit breaker's state machine, on a manual clock.
#include "runtime/circuit_breaker.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace eventloom {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using State = CircuitBreaker::State;

class CircuitBreakerTest : public ::testing::Test {
protected:
    static CircuitBreakerOptions Options(int threshold = 3, int probes = 1) {
        return CircuitBreakerOptions{
            .failure_threshold = threshold, .open_for = seconds(10), .half_open_probes = probes};
    }

    static void Fail(CircuitBreaker& breaker, int times) {
        for (int i = 0; i < times; ++i) breaker.RecordFailure();
    }

    ManualClock clock_;
};

TEST_F(CircuitBreakerTest, StartsClosedAndAllowsCalls) {
    CircuitBreaker breaker(Options(), &clock_);
    EXPECT_EQ(breaker.state(), State::kClosed);
    EXPECT_TRUE(breaker.Allow());
    EXPECT_EQ(breaker.RetryIn(), milliseconds(0));
}

TEST_F(CircuitBreakerTest, OpensAfterTheThresholdOfConsecutiveFailures) {
    CircuitBreaker breaker(Options(3), &clock_);
    Fail(breaker, 2);
    EXPECT_EQ(breaker.state(), State::kClosed);
    breaker.RecordFailure();
    EXPECT_EQ(breaker.state(), State::kOpen);
    EXPECT_FALSE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, SuccessResetsTheFailureCount) {
    CircuitBreaker breaker(Options(3), &clock_);
    Fail(breaker, 2);
    breaker.RecordSuccess();
    Fail(breaker, 2);
    EXPECT_EQ(breaker.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, RetryInIsTheOpenTimeLeftRoundedUp) {
    CircuitBreaker breaker(Options(1), &clock_);
    breaker.RecordFailure();
    EXPECT_EQ(breaker.RetryIn(), milliseconds(10000));
    clock_.Advance(seconds(3));
    EXPECT_EQ(breaker.RetryIn(), milliseconds(7000));
    clock_.Advance(std::chrono::microseconds(500));
    EXPECT_EQ(breaker.RetryIn(), milliseconds(7000));
}

TEST_F(CircuitBreakerTest, BecomesHalfOpenAfterOpenFor) {
    CircuitBreaker breaker(Options(1), &clock_);
    breaker.RecordFailure();
    clock_.Advance(milliseconds(9999));
    EXPECT_EQ(breaker.state(), State::kOpen);
    EXPECT_FALSE(breaker.Allow());
    clock_.Advance(milliseconds(1));
    EXPECT_EQ(breaker.state(), State::kHalfOpen);
    EXPECT_EQ(breaker.RetryIn(), milliseconds(0));
    EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, HalfOpenLetsOnlyTheProbesThrough) {
    CircuitBreaker breaker(Options(1, 2), &clock_);
    breaker.RecordFailure();
    clock_.Advance(seconds(10));
    EXPECT_TRUE(breaker.Allow());
    EXPECT_TRUE(breaker.Allow());
    EXPECT_FALSE(breaker.Allow());
    EXPECT_EQ(breaker.RetryIn(), milliseconds(10000));
}

TEST_F(CircuitBreakerTest, ProbeSuccessCloses) {
    CircuitBreaker breaker(Options(1), &clock_);
    breaker.RecordFailure();
    clock_.Advance(seconds(10));
    ASSERT_TRUE(breaker.Allow());
    breaker.RecordSuccess();
    EXPECT_EQ(breaker.state(), State::kClosed);
    EXPECT_TRUE(breaker.Allow());
    EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, ProbeFailureReopensForAnotherOpenFor) {
    CircuitBreaker breaker(Options(1), &clock_);
    breaker.RecordFailure();
    clock_.Advance(seconds(10));
    ASSERT_TRUE(breaker.Allow());
    breaker.RecordFailure();
    EXPECT_EQ(breaker.state(), State::kOpen);
    EXPECT_FALSE(breaker.Allow());
    EXPECT_EQ(breaker.RetryIn(), milliseconds(10000));
}

TEST_F(CircuitBreakerTest, LateFailureDoesNotExtendTheOpenTime) {
    CircuitBreaker breaker(Options(1), &clock_);
    breaker.RecordFailure();
    clock_.Advance(seconds(5));
    breaker.RecordFailure();
    clock_.Advance(seconds(5));
    EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

TEST_F(CircuitBreakerTest, LateSuccessDoesNotCloseAnOpenBreaker) {
    CircuitBreaker breaker(Options(1), &clock_);
    breaker.RecordFailure();
    breaker.RecordSuccess();
    EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, LostProbesAreReplacedAfterOpenFor) {
    CircuitBreaker breaker(Options(1), &clock_);
    breaker.RecordFailure();
    clock_.Advance(seconds(10));
    ASSERT_TRUE(breaker.Allow());  // this probe never reports
    clock_.Advance(milliseconds(9999));
    EXPECT_FALSE(breaker.Allow());
    clock_.Advance(milliseconds(1));
    EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, ZeroOpenForProbesAtOnce) {
    CircuitBreaker breaker(CircuitBreakerOptions{.failure_threshold = 1, .open_for = {}}, &clock_);
    breaker.RecordFailure();
    EXPECT_EQ(breaker.state(), State::kHalfOpen);
    EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, ConcurrentFailuresAreAllCounted) {
    constexpr int kThreads = 8;
    constexpr int kFailuresEach = 250;
    CircuitBreaker breaker(Options(kThreads * kFailuresEach + 1), &clock_);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kFailuresEach; ++i) {
                breaker.RecordFailure();
                (void)breaker.Allow();
                (void)breaker.state();
                (void)breaker.RetryIn();
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(breaker.state(), State::kClosed);
    breaker.RecordFailure();
    EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST(CircuitBreaker, StateNameSpellsEachState) {
    EXPECT_EQ(CircuitBreaker::StateName(State::kClosed), "closed");
    EXPECT_EQ(CircuitBreaker::StateName(State::kOpen), "open");
    EXPECT_EQ(CircuitBreaker::StateName(State::kHalfOpen), "half_open");
}

TEST(CircuitBreakerOptions, ValidateRefusesFieldsOutOfRange) {
    struct Case {
        const char* name;
        CircuitBreakerOptions options;
        bool ok;
    };
    const Case cases[] = {
        {"defaults", {}, true},
        {"threshold 0", {.failure_threshold = 0}, false},
        {"open_for 0", {.open_for = milliseconds(0)}, true},
        {"open_for -1", {.open_for = milliseconds(-1)}, false},
        {"probes 0", {.half_open_probes = 0}, false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(c.options.Validate().ok(), c.ok);
    }
}

}  // namespace
}  // namespace eventloom
