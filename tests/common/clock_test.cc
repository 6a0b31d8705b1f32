// The clock seam: the manual test double and the real steady clock.
#include "common/clock.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace eventloom {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(ManualClock, StartsAtAFixedInstantAfterTheEpoch) {
    ManualClock clock;
    EXPECT_EQ(clock.Now(), ManualClock::kStart);
    EXPECT_GT(clock.Now(), Clock::TimePoint());
}

TEST(ManualClock, AdvanceMovesNowForward) {
    ManualClock clock;
    clock.Advance(milliseconds(1500));
    EXPECT_EQ(clock.Now() - ManualClock::kStart, milliseconds(1500));
}

TEST(ManualClock, SetMovesNowToTheGivenInstant) {
    ManualClock clock;
    const Clock::TimePoint later = ManualClock::kStart + seconds(30);
    clock.Set(later);
    EXPECT_EQ(clock.Now(), later);
    clock.Set(ManualClock::kStart);
    EXPECT_EQ(clock.Now(), ManualClock::kStart);
}

TEST(ManualClock, ConcurrentAdvancesAreAllApplied) {
    ManualClock clock;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&clock] {
            for (int i = 0; i < 1000; ++i) {
                clock.Advance(nanoseconds(1));
                (void)clock.Now();
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(clock.Now() - ManualClock::kStart, nanoseconds(4000));
}

TEST(Clock, RealIsOneMonotonicInstance) {
    Clock* clock = Clock::Real();
    ASSERT_EQ(clock, Clock::Real());
    const Clock::TimePoint first = clock->Now();
    EXPECT_LE(first, clock->Now());
}

TEST(SaturatingAdd, AddsWhenThereIsRoom) {
    EXPECT_EQ(SaturatingAdd(ManualClock::kStart, seconds(2)), ManualClock::kStart + seconds(2));
}

TEST(SaturatingAdd, ClampsInsteadOfOverflowing) {
    EXPECT_EQ(SaturatingAdd(ManualClock::kStart, Clock::Duration::max()), Clock::TimePoint::max());
}

}  // namespace
}  // namespace eventloom
