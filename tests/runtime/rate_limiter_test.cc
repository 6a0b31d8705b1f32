// Token buckets and the combined request/token limiter, on a manual clock.
#include "runtime/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

namespace eventloom {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Duration = Clock::Duration;

class TokenBucketTest : public ::testing::Test {
protected:
    // Acquires `weight` until refused; returns how many were granted.
    static int Drain(TokenBucket& bucket, double weight = 1) {
        int granted = 0;
        while (!bucket.TryAcquire(weight).has_value()) ++granted;
        return granted;
    }

    ManualClock clock_;
};

TEST_F(TokenBucketTest, StartsFull) {
    TokenBucket bucket(10, 5, &clock_);
    EXPECT_EQ(Drain(bucket), 10);
}

TEST_F(TokenBucketTest, RefusalSaysWhenTheNextUnitArrives) {
    TokenBucket bucket(10, 5, &clock_);
    Drain(bucket);
    EXPECT_EQ(bucket.TryAcquire(1), Duration(milliseconds(200)));
    EXPECT_EQ(bucket.TryAcquire(3), Duration(milliseconds(600)));
}

TEST_F(TokenBucketTest, RefillsAtTheRate) {
    TokenBucket bucket(10, 5, &clock_);
    Drain(bucket);
    clock_.Advance(seconds(1));
    EXPECT_EQ(Drain(bucket), 5);
    clock_.Advance(milliseconds(400));
    EXPECT_EQ(Drain(bucket), 2);
}

TEST_F(TokenBucketTest, RefillStopsAtCapacity) {
    TokenBucket bucket(10, 5, &clock_);
    Drain(bucket);
    clock_.Advance(std::chrono::hours(1));
    EXPECT_DOUBLE_EQ(bucket.available(), 10);
    EXPECT_EQ(Drain(bucket), 10);
}

TEST_F(TokenBucketTest, WeightedAcquisitionTakesTheWeight) {
    TokenBucket bucket(100, 10, &clock_);
    EXPECT_FALSE(bucket.TryAcquire(60).has_value());
    EXPECT_DOUBLE_EQ(bucket.available(), 40);
    EXPECT_EQ(bucket.TryAcquire(50), Duration(seconds(1)));
    EXPECT_DOUBLE_EQ(bucket.available(), 40);
}

TEST_F(TokenBucketTest, WaitingTheReturnedTimeIsEnough) {
    struct Case {
        double capacity;
        double rate;
        double weight;
    };
    const Case cases[] = {
        {10, 5, 1}, {10, 3, 7}, {1, 1.0 / 7, 1}, {4000, 4000.0 / 60, 333}, {0.5, 0.3, 1},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(testing::Message() << c.capacity << "/" << c.rate << " w=" << c.weight);
        TokenBucket bucket(c.capacity, c.rate, &clock_);
        for (int round = 0; round < 50; ++round) {
            std::optional<Duration> wait = bucket.TryAcquire(c.weight);
            if (!wait) continue;
            clock_.Advance(*wait);
            ASSERT_FALSE(bucket.TryAcquire(c.weight).has_value()) << "round " << round;
        }
    }
}

TEST_F(TokenBucketTest, OversizedWeightIsGrantedFromAFullBucket) {
    TokenBucket bucket(4000, 4000.0 / 60, &clock_);  // 4000 tokens a minute
    EXPECT_FALSE(bucket.TryAcquire(5000).has_value());
    EXPECT_NEAR(bucket.available(), -1000, 1e-6);
}

TEST_F(TokenBucketTest, OversizedWeightWaitsOnlyUntilTheBucketIsFull) {
    TokenBucket bucket(4000, 4000.0 / 60, &clock_);
    ASSERT_FALSE(bucket.TryAcquire(1000).has_value());
    const std::optional<Duration> wait = bucket.TryAcquire(5000);
    ASSERT_TRUE(wait.has_value());
    EXPECT_EQ(*wait, Duration(seconds(15)));
    clock_.Advance(*wait);
    EXPECT_FALSE(bucket.TryAcquire(5000).has_value());
}

TEST_F(TokenBucketTest, DebtDelaysTheNextRequest) {
    TokenBucket bucket(4000, 4000.0 / 60, &clock_);
    ASSERT_FALSE(bucket.TryAcquire(5000).has_value());
    // 1000 of debt plus 100 tokens, at 4000 a minute.
    EXPECT_EQ(bucket.TryAcquire(100), Duration(milliseconds(16500)));
}

TEST_F(TokenBucketTest, OversizedWeightsKeepTheLongRunRate) {
    TokenBucket bucket(4000, 4000.0 / 60, &clock_);
    const Clock::TimePoint start = clock_.Now();
    for (int granted = 0; granted < 10;) {
        std::optional<Duration> wait = bucket.TryAcquire(5000);
        if (wait) {
            clock_.Advance(*wait);
        } else {
            ++granted;
        }
    }
    // Every grant after the first waits for its 5000 tokens of refill: 9 x 75 s.
    EXPECT_EQ(clock_.Now() - start, Duration(seconds(9 * 75)));
}

TEST_F(TokenBucketTest, AdjustGivesBackAndTakesMore) {
    TokenBucket bucket(100, 1, &clock_);
    ASSERT_FALSE(bucket.TryAcquire(80).has_value());
    bucket.Adjust(30);
    EXPECT_DOUBLE_EQ(bucket.available(), 50);
    bucket.Adjust(1000);
    EXPECT_DOUBLE_EQ(bucket.available(), 100);
    bucket.Adjust(-150);
    EXPECT_DOUBLE_EQ(bucket.available(), -50);
}

TEST_F(TokenBucketTest, NegativeWeightCountsAsZero) {
    TokenBucket bucket(10, 1, &clock_);
    EXPECT_FALSE(bucket.TryAcquire(-5).has_value());
    EXPECT_DOUBLE_EQ(bucket.available(), 10);
}

TEST_F(TokenBucketTest, ClockGoingBackRefillsNothing) {
    TokenBucket bucket(10, 1, &clock_);
    Drain(bucket);
    clock_.Advance(seconds(-30));
    EXPECT_TRUE(bucket.TryAcquire(1).has_value());
    clock_.Advance(seconds(30));
    EXPECT_EQ(Drain(bucket), 0);
    clock_.Advance(seconds(1));
    EXPECT_EQ(Drain(bucket), 1);
}

TEST_F(TokenBucketTest, WithoutRefillTheWaitIsForever) {
    TokenBucket bucket(2, 0, &clock_);
    Drain(bucket);
    EXPECT_EQ(bucket.TryAcquire(1), Duration::max());
}

TEST_F(TokenBucketTest, ConcurrentAcquiresGrantExactlyTheCapacity) {
    TokenBucket bucket(1000, 1, &clock_);
    std::atomic<int> granted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 500; ++i) {
                if (!bucket.TryAcquire(1).has_value()) granted.fetch_add(1);
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(granted.load(), 1000);
}

class RateLimiterTest : public ::testing::Test {
protected:
    ManualClock clock_;
};

TEST_F(RateLimiterTest, WithoutLimitsEverythingIsGranted) {
    RateLimiter limiter(RateLimits{}, &clock_);
    for (int i = 0; i < 1000; ++i) ASSERT_FALSE(limiter.TryAcquire(1e9).has_value());
}

TEST_F(RateLimiterTest, NonFiniteLimitIsNoLimit) {
    RateLimiter limiter(RateLimits{.requests_per_second = HUGE_VAL}, &clock_);
    for (int i = 0; i < 1000; ++i) ASSERT_FALSE(limiter.TryAcquire().has_value());
}

TEST_F(RateLimiterTest, RequestsPerSecondLimitRefusesTheExtraRequest) {
    RateLimiter limiter(RateLimits{.requests_per_second = 2}, &clock_);
    EXPECT_FALSE(limiter.TryAcquire().has_value());
    EXPECT_FALSE(limiter.TryAcquire().has_value());
    EXPECT_EQ(limiter.TryAcquire(), Duration(milliseconds(500)));
}

TEST_F(RateLimiterTest, RequestsPerMinuteLimitRefillsOneWindowAMinute) {
    RateLimiter limiter(RateLimits{.requests_per_minute = 60}, &clock_);
    for (int i = 0; i < 60; ++i) ASSERT_FALSE(limiter.TryAcquire().has_value());
    EXPECT_EQ(limiter.TryAcquire(), Duration(seconds(1)));
}

TEST_F(RateLimiterTest, TokensPerMinuteLimitCountsTheWeight) {
    RateLimiter limiter(RateLimits{.tokens_per_minute = 1000}, &clock_);
    EXPECT_FALSE(limiter.TryAcquire(600).has_value());
    EXPECT_EQ(limiter.TryAcquire(600), Duration(seconds(12)));
}

TEST_F(RateLimiterTest, RefusalTakesFromNoLimit) {
    RateLimiter limiter(RateLimits{.requests_per_minute = 2, .tokens_per_minute = 100}, &clock_);
    ASSERT_FALSE(limiter.TryAcquire(100).has_value());
    ASSERT_TRUE(limiter.TryAcquire(50).has_value());  // refused by the token limit
    // The request limit still holds its second request: the refusal took nothing from it.
    EXPECT_FALSE(limiter.TryAcquire(0).has_value());
    EXPECT_TRUE(limiter.TryAcquire(0).has_value());
}

TEST_F(RateLimiterTest, WaitIsTheLongestOfTheRefusingLimits) {
    RateLimiter limiter(RateLimits{.requests_per_second = 1, .tokens_per_minute = 60}, &clock_);
    ASSERT_FALSE(limiter.TryAcquire(60).has_value());
    const std::optional<Duration> wait = limiter.TryAcquire(30);
    ASSERT_TRUE(wait.has_value());
    EXPECT_EQ(*wait, Duration(seconds(30)));
    clock_.Advance(*wait);
    EXPECT_FALSE(limiter.TryAcquire(30).has_value());
}

TEST_F(RateLimiterTest, OversizedRequestIsNotStarved) {
    RateLimiter limiter(RateLimits{.requests_per_minute = 100, .tokens_per_minute = 4000}, &clock_);
    ASSERT_FALSE(limiter.TryAcquire(3000).has_value());
    const std::optional<Duration> wait = limiter.TryAcquire(5000);
    ASSERT_TRUE(wait.has_value());
    EXPECT_EQ(*wait, Duration(seconds(45)));
    clock_.Advance(*wait);
    EXPECT_FALSE(limiter.TryAcquire(5000).has_value());
}

TEST_F(RateLimiterTest, AdjustTokensCorrectsTheTokenLimit) {
    RateLimiter limiter(RateLimits{.tokens_per_minute = 1000}, &clock_);
    ASSERT_FALSE(limiter.TryAcquire(1000).has_value());
    limiter.AdjustTokens(400);  // the call used 600 tokens, not the 1000 estimated
    EXPECT_FALSE(limiter.TryAcquire(400).has_value());
    EXPECT_TRUE(limiter.TryAcquire(1).has_value());
}

TEST(RateLimits, ValidateRefusesNegativeAndNonFiniteLimits) {
    struct Case {
        const char* name;
        RateLimits limits;
        bool ok;
    };
    const Case cases[] = {
        {"none", RateLimits{}, true},
        {"all set", RateLimits{1, 60, 4000}, true},
        {"negative rps", RateLimits{.requests_per_second = -1}, false},
        {"negative rpm", RateLimits{.requests_per_minute = -1}, false},
        {"nan tpm", RateLimits{.tokens_per_minute = std::nan("")}, false},
        {"infinite tpm", RateLimits{.tokens_per_minute = HUGE_VAL}, false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(c.limits.Validate().ok(), c.ok);
    }
}

}  // namespace
}  // namespace eventloom
