// MicroBatcher (by size and by time) and Debouncer (coalescing, quiet, max_delay).
#include "runtime/batcher.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace eventloom {
namespace {

using std::chrono::milliseconds;
using TimePoint = Clock::TimePoint;

const TimePoint kT0 = ManualClock::kStart;

TEST(MicroBatcher, ReleasesABatchWhenFull) {
    MicroBatcher<int> batcher(3, milliseconds(10));
    EXPECT_FALSE(batcher.Add(1, kT0).has_value());
    EXPECT_FALSE(batcher.Add(2, kT0).has_value());
    EXPECT_EQ(batcher.Add(3, kT0), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(batcher.pending(), 0u);
}

TEST(MicroBatcher, PollReleasesOnceTheOldestItemWaitedMaxWait) {
    MicroBatcher<int> batcher(3, milliseconds(10));
    ASSERT_FALSE(batcher.Add(1, kT0).has_value());
    ASSERT_FALSE(batcher.Add(2, kT0 + milliseconds(8)).has_value());
    EXPECT_FALSE(batcher.Poll(kT0 + milliseconds(9)).has_value());
    EXPECT_EQ(batcher.Poll(kT0 + milliseconds(10)), (std::vector<int>{1, 2}));
}

TEST(MicroBatcher, PollWithNothingPendingReturnsNothing) {
    MicroBatcher<int> batcher(3, milliseconds(10));
    EXPECT_FALSE(batcher.Poll(kT0 + std::chrono::hours(1)).has_value());
}

TEST(MicroBatcher, NextDeadlineIsTheOldestItemPlusMaxWait) {
    MicroBatcher<int> batcher(3, milliseconds(10));
    EXPECT_FALSE(batcher.NextDeadline().has_value());
    ASSERT_FALSE(batcher.Add(1, kT0 + milliseconds(5)).has_value());
    ASSERT_FALSE(batcher.Add(2, kT0 + milliseconds(7)).has_value());
    EXPECT_EQ(batcher.NextDeadline(), kT0 + milliseconds(15));
}

TEST(MicroBatcher, AddToAnOverdueBatchReleasesIt) {
    MicroBatcher<int> batcher(3, milliseconds(10));
    ASSERT_FALSE(batcher.Add(1, kT0).has_value());
    EXPECT_EQ(batcher.Add(2, kT0 + milliseconds(20)), (std::vector<int>{1, 2}));
}

TEST(MicroBatcher, TimerRestartsWithTheNextBatch) {
    MicroBatcher<int> batcher(2, milliseconds(10));
    ASSERT_FALSE(batcher.Add(1, kT0).has_value());
    ASSERT_TRUE(batcher.Add(2, kT0 + milliseconds(1)).has_value());
    ASSERT_FALSE(batcher.Add(3, kT0 + milliseconds(5)).has_value());
    EXPECT_FALSE(batcher.Poll(kT0 + milliseconds(14)).has_value());
    EXPECT_EQ(batcher.Poll(kT0 + milliseconds(15)), (std::vector<int>{3}));
}

TEST(MicroBatcher, FlushReturnsWhateverIsPending) {
    MicroBatcher<int> batcher(3, milliseconds(10));
    ASSERT_FALSE(batcher.Add(1, kT0).has_value());
    EXPECT_EQ(batcher.Flush(), (std::vector<int>{1}));
    EXPECT_FALSE(batcher.NextDeadline().has_value());
}

TEST(MicroBatcher, InfiniteMaxWaitReleasesOnlyBySize) {
    MicroBatcher<int> batcher(2, Clock::Duration::max());
    ASSERT_FALSE(batcher.Add(1, kT0).has_value());
    EXPECT_FALSE(batcher.Poll(kT0 + std::chrono::hours(10000)).has_value());
    EXPECT_EQ(batcher.NextDeadline(), TimePoint::max());
}

TEST(MicroBatcher, HoldsMoveOnlyItems) {
    MicroBatcher<std::unique_ptr<int>> batcher(1, milliseconds(10));
    std::optional<std::vector<std::unique_ptr<int>>> batch =
        batcher.Add(std::make_unique<int>(4), kT0);
    ASSERT_TRUE(batch.has_value());
    EXPECT_EQ(*batch->front(), 4);
}

class DebouncerTest : public ::testing::Test {
protected:
    // quiet 100 ms, max_delay 300 ms.
    Debouncer<std::string> debouncer_{milliseconds(100), milliseconds(300)};

    std::vector<std::string> KeysAt(TimePoint now) {
        std::vector<std::string> keys;
        for (auto& released : debouncer_.Poll(now)) keys.push_back(released.key);
        return keys;
    }
};

TEST_F(DebouncerTest, KeepsOnlyTheLatestItemOfAKey) {
    EXPECT_EQ(debouncer_.Add("doc-1", "v1", kT0), std::nullopt);
    EXPECT_EQ(debouncer_.Add("doc-1", "v2", kT0 + milliseconds(10)), "v1");  // the replaced item
    EXPECT_EQ(debouncer_.Add("doc-1", "v3", kT0 + milliseconds(20)), "v2");
    auto released = debouncer_.Poll(kT0 + milliseconds(120));
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0].key, "doc-1");
    EXPECT_EQ(released[0].item, "v3");
    EXPECT_EQ(released[0].coalesced, 2u);
    EXPECT_EQ(released[0].first_add, kT0);
    EXPECT_EQ(debouncer_.coalesced(), 2u);
}

TEST_F(DebouncerTest, AnUpdateRestartsTheQuietPeriod) {
    debouncer_.Add("doc-1", "v1", kT0);
    debouncer_.Add("doc-1", "v2", kT0 + milliseconds(50));
    EXPECT_TRUE(KeysAt(kT0 + milliseconds(149)).empty());
    EXPECT_EQ(KeysAt(kT0 + milliseconds(150)), (std::vector<std::string>{"doc-1"}));
}

TEST_F(DebouncerTest, MaxDelayReleasesAKeyThatKeepsChanging) {
    for (int ms = 0; ms < 300; ms += 50) {
        debouncer_.Add("doc-1", "v" + std::to_string(ms), kT0 + milliseconds(ms));
        ASSERT_TRUE(KeysAt(kT0 + milliseconds(ms)).empty());
    }
    auto released = debouncer_.Poll(kT0 + milliseconds(300));
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0].item, "v250");
}

TEST_F(DebouncerTest, KeysAreDebouncedIndependently) {
    debouncer_.Add("doc-1", "a", kT0);
    debouncer_.Add("doc-2", "b", kT0 + milliseconds(60));
    EXPECT_EQ(KeysAt(kT0 + milliseconds(100)), (std::vector<std::string>{"doc-1"}));
    EXPECT_EQ(KeysAt(kT0 + milliseconds(160)), (std::vector<std::string>{"doc-2"}));
}

TEST_F(DebouncerTest, ReleasesInDeadlineOrder) {
    debouncer_.Add("late", "x", kT0 + milliseconds(30));
    debouncer_.Add("early", "x", kT0);
    debouncer_.Add("tie-first", "x", kT0 + milliseconds(10));
    debouncer_.Add("tie-second", "x", kT0 + milliseconds(10));
    EXPECT_EQ(KeysAt(kT0 + milliseconds(200)),
              (std::vector<std::string>{"early", "tie-first", "tie-second", "late"}));
}

TEST_F(DebouncerTest, NextDeadlineIsTheEarliestDueKey) {
    EXPECT_FALSE(debouncer_.NextDeadline().has_value());
    debouncer_.Add("doc-1", "a", kT0);
    debouncer_.Add("doc-2", "b", kT0 + milliseconds(40));
    EXPECT_EQ(debouncer_.NextDeadline(), kT0 + milliseconds(100));
    // Updated at 250 ms: quiet would end at 350 ms, but max_delay ends the burst at 300 ms.
    debouncer_.Add("doc-1", "c", kT0 + milliseconds(250));
    EXPECT_EQ(debouncer_.NextDeadline(), kT0 + milliseconds(140));
    ASSERT_EQ(KeysAt(kT0 + milliseconds(140)), (std::vector<std::string>{"doc-2"}));
    EXPECT_EQ(debouncer_.NextDeadline(), kT0 + milliseconds(300));
}

TEST_F(DebouncerTest, AReleasedKeyStartsANewBurst) {
    debouncer_.Add("doc-1", "v1", kT0);
    debouncer_.Add("doc-1", "v2", kT0 + milliseconds(10));
    ASSERT_EQ(KeysAt(kT0 + milliseconds(110)).size(), 1u);
    EXPECT_EQ(debouncer_.Add("doc-1", "v3", kT0 + milliseconds(120)), std::nullopt);
    auto released = debouncer_.Poll(kT0 + milliseconds(220));
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0].coalesced, 0u);
    EXPECT_EQ(released[0].first_add, kT0 + milliseconds(120));
}

TEST_F(DebouncerTest, FlushReleasesEverythingPending) {
    debouncer_.Add("doc-1", "a", kT0);
    debouncer_.Add("doc-2", "b", kT0);
    EXPECT_EQ(debouncer_.Flush().size(), 2u);
    EXPECT_EQ(debouncer_.pending(), 0u);
    EXPECT_FALSE(debouncer_.NextDeadline().has_value());
}

TEST(Debouncer, InfiniteMaxDelayWaitsForQuiet) {
    Debouncer<int> debouncer(milliseconds(100), Clock::Duration::max());
    for (int ms = 0; ms < 10000; ms += 50) {
        debouncer.Add("k", ms, kT0 + milliseconds(ms));
        ASSERT_TRUE(debouncer.Poll(kT0 + milliseconds(ms)).empty());
    }
    EXPECT_EQ(debouncer.Poll(kT0 + milliseconds(10050)).size(), 1u);
}

}  // namespace
}  // namespace eventloom
