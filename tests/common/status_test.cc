#include "eventloom/status.h"

#include <gtest/gtest.h>

namespace eventloom {
namespace {

TEST(Status, DefaultIsOk) {
    Status s;
    EXPECT_TRUE(s.ok());
    EXPECT_EQ(s.ToString(), "ok");
}

TEST(Status, ToStringNamesCodeAndMessage) {
    EXPECT_EQ(InvalidArgumentError("attribute 'id' is empty").ToString(),
              "invalid_argument: attribute 'id' is empty");
}

TEST(Status, CodesCarryTheRetryDecision) {
    struct Case {
        Status status;
        bool retryable;
    };
    const Case cases[] = {
        {UnavailableError("x"), true},       {DeadlineExceededError("x"), true},
        {ResourceExhaustedError("x"), true}, {AbortedError("x"), true},
        {InvalidArgumentError("x"), false},  {FailedPreconditionError("x"), false},
        {DataLossError("x"), false},         {NotFoundError("x"), false},
        {InternalError("x"), false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.status.ToString());
        EXPECT_EQ(c.status.retryable(), c.retryable);
    }
}

TEST(Status, WithContextPrefixesTheMessage) {
    Status s = NotFoundError("no such file").WithContext("topic orders");
    EXPECT_EQ(s.code(), StatusCode::kNotFound);
    EXPECT_EQ(s.message(), "topic orders: no such file");
}

TEST(Result, HoldsValueOrError) {
    Result<int> good = 7;
    ASSERT_TRUE(good.ok());
    EXPECT_EQ(*good, 7);
    Result<int> bad = NotFoundError("gone");
    EXPECT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
    EXPECT_EQ(bad.value_or(3), 3);
}

Result<int> Half(int v) {
    if (v % 2 != 0) return InvalidArgumentError("odd");
    return v / 2;
}

Result<int> Quarter(int v) {
    EVENTLOOM_ASSIGN_OR_RETURN(int half, Half(v));
    EVENTLOOM_ASSIGN_OR_RETURN(int quarter, Half(half));
    return quarter;
}

TEST(Result, AssignOrReturnPropagatesTheFirstError) {
    EXPECT_EQ(*Quarter(8), 2);
    EXPECT_EQ(Quarter(6).status().message(), "odd");
}

}  // namespace
}  // namespace eventloom
