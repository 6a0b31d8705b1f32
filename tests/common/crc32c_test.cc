#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace eventloom {
namespace {

TEST(Crc32c, MatchesPublishedCheckValue) {
    EXPECT_EQ(crc32c::Value("123456789"), 0xE3069283u);
    EXPECT_EQ(crc32c::ExtendPortable(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32c, MatchesKnownVectors) {
    std::string zeros(32, '\0');
    std::string ones(32, '\xff');
    EXPECT_EQ(crc32c::Value(zeros), 0x8A9136AAu);
    EXPECT_EQ(crc32c::Value(ones), 0x62A8AB43u);
}

TEST(Crc32c, ExtendEqualsWholeValue) {
    std::string data = "hello, event log";
    uint32_t split =
        crc32c::Extend(crc32c::Value(data.substr(0, 5)), data.data() + 5, data.size() - 5);
    EXPECT_EQ(split, crc32c::Value(data));
}

TEST(Crc32c, HardwareAndPortablePathsAgree) {
    std::mt19937 rng(42);
    for (size_t len : {0, 1, 7, 8, 9, 63, 64, 1000, 4097}) {
        std::string data(len, '\0');
        for (char& c : data) c = static_cast<char>(rng());
        SCOPED_TRACE(len);
        EXPECT_EQ(crc32c::Value(data), crc32c::ExtendPortable(0, data.data(), data.size()));
    }
}

}  // namespace
}  // namespace eventloom
