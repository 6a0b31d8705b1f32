#include "common/uuid.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>

namespace eventloom {
namespace {

TEST(UuidV7, HasVersionAndVariantBits) {
    Uuid id = NewUuidV7();
    EXPECT_EQ(id[6] >> 4, 7);
    EXPECT_EQ(id[8] >> 6, 2);
}

TEST(UuidV7, EmbedsCurrentUnixMilliseconds) {
    auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    Uuid id = NewUuidV7();
    uint64_t ms = 0;
    for (int i = 0; i < 6; ++i) ms = (ms << 8) | id[i];
    EXPECT_GE(ms, static_cast<uint64_t>(before));
    EXPECT_LE(ms, static_cast<uint64_t>(before) + 5000);
}

TEST(UuidV7, IdsAreUniqueAndIncreasing) {
    std::string previous;
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) {
        std::string id = UuidToString(NewUuidV7());
        EXPECT_GT(id, previous);
        EXPECT_TRUE(seen.insert(id).second);
        previous = id;
    }
}

TEST(UuidV7, TextFormIsCanonical) {
    std::string id = NewEventId();
    ASSERT_EQ(id.size(), 36u);
    for (size_t i : {8, 13, 18, 23}) EXPECT_EQ(id[i], '-');
    EXPECT_EQ(id[14], '7');
}

}  // namespace
}  // namespace eventloom
