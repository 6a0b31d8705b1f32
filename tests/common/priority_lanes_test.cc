// PriorityLanes: priority order, FIFO within a lane, and the max_wait anti-starvation rule.
#include "common/priority_lanes.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace eventloom {
namespace {

using std::chrono::milliseconds;
using Lanes = PriorityLanes<std::string>;
using TimePoint = Lanes::TimePoint;

const TimePoint kT0 = TimePoint(std::chrono::hours(24));

// Pops everything at `now`, in the order served.
std::vector<std::string> PopAll(Lanes& lanes, TimePoint now) {
    std::vector<std::string> served;
    while (std::optional<std::string> item = lanes.Pop(now)) served.push_back(*item);
    return served;
}

TEST(PriorityLanes, EmptyPopReturnsNothing) {
    Lanes lanes(milliseconds(100));
    EXPECT_FALSE(lanes.Pop(kT0).has_value());
    EXPECT_TRUE(lanes.empty());
}

TEST(PriorityLanes, HigherLaneIsServedFirst) {
    Lanes lanes(milliseconds(100));
    lanes.Push("low", 1, kT0);
    lanes.Push("high", 9, kT0);
    lanes.Push("mid", 5, kT0);
    EXPECT_EQ(PopAll(lanes, kT0), (std::vector<std::string>{"high", "mid", "low"}));
}

TEST(PriorityLanes, LaneIsFifo) {
    Lanes lanes(milliseconds(100));
    lanes.Push("a", 4, kT0);
    lanes.Push("b", 4, kT0);
    lanes.Push("c", 4, kT0);
    EXPECT_EQ(PopAll(lanes, kT0), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(PriorityLanes, PriorityOutsideTheRangeIsClamped) {
    Lanes lanes(milliseconds(100));
    lanes.Push("above", 42, kT0);
    lanes.Push("below", -3, kT0);
    EXPECT_EQ(lanes.lane_size(9), 1u);
    EXPECT_EQ(lanes.lane_size(0), 1u);
    EXPECT_EQ(lanes.size(), 2u);
}

TEST(PriorityLanes, OverdueLowerHeadIsServedNext) {
    Lanes lanes(milliseconds(100));
    lanes.Push("low", 0, kT0);
    lanes.Push("high-1", 9, kT0 + milliseconds(50));
    lanes.Push("high-2", 9, kT0 + milliseconds(50));
    EXPECT_EQ(lanes.Pop(kT0 + milliseconds(99)), "high-1");
    EXPECT_EQ(lanes.Pop(kT0 + milliseconds(100)), "low");
    EXPECT_EQ(lanes.promoted(), 1u);
}

TEST(PriorityLanes, LowerLaneWaitsNoLongerThanMaxWaitUnderSteadyHighTraffic) {
    // One high item arrives and one item is served every millisecond: without the rule the
    // low lane would never be served.
    Lanes lanes(milliseconds(250));
    lanes.Push("low", 2, kT0);
    for (int ms = 0; ms < 1000; ++ms) {
        const TimePoint now = kT0 + milliseconds(ms);
        lanes.Push("high", 8, now);
        if (lanes.Pop(now) == "low") {
            EXPECT_EQ(ms, 250);
            return;
        }
    }
    FAIL() << "the low lane was starved";
}

TEST(PriorityLanes, OldestOverdueHeadIsServedFirst) {
    Lanes lanes(milliseconds(100));
    lanes.Push("lane3", 3, kT0 + milliseconds(10));
    lanes.Push("lane1", 1, kT0);
    lanes.Push("lane9", 9, kT0 + milliseconds(500));
    EXPECT_EQ(PopAll(lanes, kT0 + milliseconds(500)),
              (std::vector<std::string>{"lane1", "lane3", "lane9"}));
}

TEST(PriorityLanes, InfiniteMaxWaitIsStrictPriority) {
    Lanes lanes(Lanes::Duration::max());
    lanes.Push("low", 0, kT0);
    lanes.Push("high", 9, kT0 + std::chrono::hours(1000));
    EXPECT_EQ(PopAll(lanes, kT0 + std::chrono::hours(2000)),
              (std::vector<std::string>{"high", "low"}));
    EXPECT_EQ(lanes.promoted(), 0u);
}

TEST(PriorityLanes, ZeroMaxWaitServesByEnqueuedTime) {
    Lanes lanes(Lanes::Duration::zero());
    lanes.Push("second", 9, kT0 + milliseconds(2));
    lanes.Push("first", 0, kT0 + milliseconds(1));
    lanes.Push("third", 5, kT0 + milliseconds(3));
    EXPECT_EQ(PopAll(lanes, kT0 + milliseconds(3)),
              (std::vector<std::string>{"first", "second", "third"}));
}

TEST(PriorityLanes, SizesFollowPushAndPop) {
    Lanes lanes(milliseconds(100));
    lanes.Push("a", 7, kT0);
    lanes.Push("b", 7, kT0);
    lanes.Push("c", 2, kT0);
    ASSERT_TRUE(lanes.Pop(kT0).has_value());
    EXPECT_EQ(lanes.size(), 2u);
    EXPECT_EQ(lanes.lane_size(7), 1u);
    EXPECT_EQ(lanes.lane_size(2), 1u);
    EXPECT_EQ(lanes.lane_size(5), 0u);
}

TEST(PriorityLanes, HoldsMoveOnlyItems) {
    PriorityLanes<std::unique_ptr<int>> lanes(milliseconds(100));
    lanes.Push(std::make_unique<int>(7), 3, kT0);
    std::optional<std::unique_ptr<int>> item = lanes.Pop(kT0);
    ASSERT_TRUE(item.has_value());
    EXPECT_EQ(**item, 7);
}

}  // namespace
}  // namespace eventloom
