// The scalar syntaxes of pipeline files: ${VAR} substitution, durations and byte sizes.
#include <gtest/gtest.h>

#include <cstdlib>

#include "pipeline/config/pipeline_spec.h"

namespace eventloom::pipeline {
namespace {

using std::chrono::milliseconds;

class SubstituteEnvTest : public ::testing::Test {
protected:
    void SetUp() override {
        setenv("EL_TEST_SET", "value", 1);
        setenv("EL_TEST_EMPTY", "", 1);
        unsetenv("EL_TEST_UNSET");
        unsetenv("EL_TEST_UNSET2");
    }
    void TearDown() override {
        unsetenv("EL_TEST_SET");
        unsetenv("EL_TEST_EMPTY");
    }
};

TEST_F(SubstituteEnvTest, ExpandsValidForms) {
    struct Case {
        const char* text;
        const char* want;
    };
    const Case cases[] = {
        {"plain text", "plain text"},
        {"${EL_TEST_SET}", "value"},
        {"a-${EL_TEST_SET}-b", "a-value-b"},
        {"${EL_TEST_SET:-fallback}", "value"},
        {"${EL_TEST_UNSET:-fallback}", "fallback"},
        {"${EL_TEST_EMPTY:-fallback}", "fallback"},
        {"${EL_TEST_EMPTY}", ""},
        {"${EL_TEST_UNSET:-}", ""},
        {"${EL_TEST_UNSET:-${EL_TEST_SET}/x}", "value/x"},
        {"${EL_TEST_UNSET:-${EL_TEST_UNSET2:-deep}/x}", "deep/x"},
        // A default that is not used may name unset variables.
        {"${EL_TEST_SET:-${EL_TEST_UNSET}}", "value"},
        {"$${EL_TEST_SET}", "${EL_TEST_SET}"},
        {"cost $5 {x}", "cost $5 {x}"},
        {"}", "}"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        Result<std::string> got = SubstituteEnv(c.text);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        EXPECT_EQ(*got, c.want);
    }
}

TEST_F(SubstituteEnvTest, UnsetVariableIsAnErrorNamingIt) {
    Result<std::string> got = SubstituteEnv("x ${EL_TEST_UNSET} y");
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(got.status().message().find("'EL_TEST_UNSET' is not set"), std::string::npos);
}

TEST_F(SubstituteEnvTest, UnsetVariableInAUsedDefaultIsAnError) {
    Result<std::string> got = SubstituteEnv("${EL_TEST_UNSET:-${EL_TEST_UNSET2}}");
    ASSERT_FALSE(got.ok());
    EXPECT_NE(got.status().message().find("EL_TEST_UNSET2"), std::string::npos);
}

TEST_F(SubstituteEnvTest, MalformedReferencesAreErrors) {
    for (const char* text : {"${EL_TEST_SET", "${", "${EL_TEST_UNSET:-abc", "${1X}", "${}",
                             "${A B}", "${EL_TEST_SET:abc}"}) {
        SCOPED_TRACE(text);
        Result<std::string> got = SubstituteEnv(text);
        EXPECT_FALSE(got.ok());
    }
}

TEST(ParseDuration, AcceptsUnitsAndBareMilliseconds) {
    struct Case {
        const char* text;
        int64_t ms;
    };
    const Case cases[] = {
        {"500ms", 500},      {"2s", 2000},   {"1.5s", 1500}, {"1m", 60'000},      {"1h", 3'600'000},
        {"7d", 604'800'000}, {"1500", 1500}, {"0", 0},       {"0.5h", 1'800'000}, {".25s", 250},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        Result<milliseconds> got = ParseDuration(c.text);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        EXPECT_EQ(got->count(), c.ms);
    }
}

TEST(ParseDuration, RejectsMalformedValues) {
    for (const char* text :
         {"", "s", "5 s", "-1s", "1.5", "10x", "1.5ms", "2sec", "1e3", "99999999999d"}) {
        SCOPED_TRACE(text);
        Result<milliseconds> got = ParseDuration(text);
        ASSERT_FALSE(got.ok());
        EXPECT_NE(got.status().message().find("bad duration"), std::string::npos);
    }
}

TEST(ParseByteSize, AcceptsBinaryAndDecimalUnits) {
    struct Case {
        const char* text;
        uint64_t bytes;
    };
    const Case cases[] = {
        {"1048576", 1048576}, {"512KiB", 512 * 1024}, {"1MiB", 1 << 20},  {"1GiB", 1ull << 30},
        {"2TiB", 2ull << 40}, {"1KB", 1000},          {"1MB", 1'000'000}, {"3GB", 3'000'000'000},
        {"10B", 10},          {"1.5KiB", 1536},       {"0", 0},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        Result<uint64_t> got = ParseByteSize(c.text);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        EXPECT_EQ(*got, c.bytes);
    }
}

TEST(ParseByteSize, RejectsMalformedValues) {
    for (const char* text :
         {"", "MiB", "1 MiB", "-1", "1mb", "1Mib", "1.5B", "1x", "99999999TiB"}) {
        SCOPED_TRACE(text);
        Result<uint64_t> got = ParseByteSize(text);
        ASSERT_FALSE(got.ok());
        EXPECT_NE(got.status().message().find("bad size"), std::string::npos);
    }
}

}  // namespace
}  // namespace eventloom::pipeline
