#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "event/event_samples.h"
#include "eventloom/event.h"

namespace eventloom {
namespace {

using ::eventloom::testing::FullEvent;
using ::eventloom::testing::MinimalEvent;
using ::testing::HasSubstr;

// Asserts that `status` is InvalidArgument and its message contains `needle`.
void ExpectInvalid(const Status& status, const std::string& needle) {
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_THAT(status.message(), HasSubstr(needle));
}

TEST(EventValidate, MinimalEventIsAccepted) { EXPECT_TRUE(ValidateEvent(MinimalEvent()).ok()); }

TEST(EventValidate, EventWithEveryAttributeIsAccepted) {
    Status status = ValidateEvent(FullEvent());
    EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(EventValidate, MissingRequiredAttributeIsRejected) {
    for (std::string Event::*member :
         {&Event::id, &Event::source, &Event::type, &Event::specversion}) {
        Event event = MinimalEvent();
        (event.*member).clear();
        Status status = ValidateEvent(event);
        SCOPED_TRACE(status.message());
        EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(status.message(), HasSubstr("is required"));
    }
}

TEST(EventValidate, MissingRequiredAttributeIsNamed) {
    Event event = MinimalEvent();
    event.type.clear();
    EXPECT_EQ(ValidateEvent(event).message(),
              "attribute 'type': is required and must not be empty");
}

TEST(EventValidate, WrongSpecversionIsRejected) {
    Event event = MinimalEvent();
    event.specversion = "0.3";
    Status status = ValidateEvent(event);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), "attribute 'specversion': must be \"1.0\", got \"0.3\"");
}

TEST(EventValidate, WellFormedTimestampsAreAccepted) {
    for (const char* time : {
             "2026-12-03T15:42:42Z",
             "2026-12-03T15:42:42.123456Z",
             "2026-12-03T15:42:42.1+05:30",
             "2026-12-03T15:42:42-08:00",
             "2026-12-03t15:42:42z",  // RFC 3339 allows lowercase
             "2024-02-29T00:00:00Z",  // leap year
             "2000-02-29T00:00:00Z",  // divisible by 400
             "2016-12-31T23:59:60Z",  // leap second
             "0000-01-01T00:00:00Z",
         }) {
        SCOPED_TRACE(time);
        Event event = MinimalEvent();
        event.time = time;
        Status status = ValidateEvent(event);
        EXPECT_TRUE(status.ok()) << status.ToString();
    }
}

TEST(EventValidate, MalformedTimestampsAreRejected) {
    for (const char* time : {
             "2026-12-03 15:42:42Z",       // space instead of T
             "2026-12-03",                 // date only
             "2026-12-03T15:42Z",          // no seconds
             "2026-12-03T15:42:42",        // no offset
             "2026-12-03T15:42:42.Z",      // empty fraction
             "2026-12-03T15:42:42,5Z",     // comma fraction
             "2026-12-03T15:42:42+0100",   // offset without colon
             "2026-12-03T15:42:42Zjunk",   // trailing bytes
             "26-12-03T15:42:42Z",         // two-digit year
             "2026-1-03T15:42:42Z",        // one-digit month
             "2026-13-03T15:42:42Z",       // month 13
             "2026-00-03T15:42:42Z",       // month 0
             "2026-12-32T15:42:42Z",       // day 32
             "2026-12-00T15:42:42Z",       // day 0
             "2026-02-30T15:42:42Z",       // February 30
             "2025-02-29T15:42:42Z",       // not a leap year
             "1900-02-29T15:42:42Z",       // divisible by 100
             "2026-04-31T15:42:42Z",       // April 31
             "2026-12-03T24:00:00Z",       // hour 24
             "2026-12-03T15:60:00Z",       // minute 60
             "2026-12-03T15:42:61Z",       // second 61
             "2026-12-03T15:42:42+24:00",  // offset hour 24
             "2026-12-03T15:42:42+01:60",  // offset minute 60
             "2026-12-03T1a:42:42Z",       // letter in hour
         }) {
        SCOPED_TRACE(time);
        Event event = MinimalEvent();
        event.time = time;
        ExpectInvalid(ValidateEvent(event), "attribute 'time': must be an RFC 3339 timestamp");
    }
}

TEST(EventValidate, TimestampRangeErrorSaysWhichField) {
    Event event = MinimalEvent();
    event.time = "2025-02-29T15:42:42Z";
    ExpectInvalid(ValidateEvent(event), "day out of range");
}

TEST(EventValidate, MalformedDeadlineIsRejected) {
    Event event = MinimalEvent();
    event.deadline = "tomorrow";
    ExpectInvalid(ValidateEvent(event), "attribute 'deadline': must be an RFC 3339 timestamp");
}

TEST(EventValidate, WellFormedTraceparentIsAccepted) {
    Event event = MinimalEvent();
    event.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    EXPECT_TRUE(ValidateEvent(event).ok());
}

TEST(EventValidate, MalformedTraceparentsAreRejected) {
    struct Case {
        const char* description;
        const char* traceparent;
        const char* message;
    };
    const Case cases[] = {
        {"short", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0", "must be 00-"},
        {"long", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-001", "must be 00-"},
        {"bad separator", "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "must be 00-"},
        {"version 01", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "version"},
        {"version ff", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "version"},
        {"uppercase trace-id", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
         "trace-id must be 32 lowercase hex"},
        {"non-hex trace-id", "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
         "trace-id must be 32 lowercase hex"},
        {"zero trace-id", "00-00000000000000000000000000000000-b7ad6b7169203331-01",
         "trace-id must not be all zeros"},
        {"uppercase parent-id", "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",
         "parent-id must be 16 lowercase hex"},
        {"zero parent-id", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
         "parent-id must not be all zeros"},
        {"non-hex flags", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",
         "flags must be 2 lowercase hex"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        Event event = MinimalEvent();
        event.traceparent = c.traceparent;
        Status status = ValidateEvent(event);
        ExpectInvalid(status, "attribute 'traceparent': ");
        ExpectInvalid(status, c.message);
    }
}

TEST(EventValidate, TracestateOf512CharactersIsAccepted) {
    Event event = MinimalEvent();
    event.tracestate = std::string(512, 'a');
    EXPECT_TRUE(ValidateEvent(event).ok());
}

TEST(EventValidate, TracestateOver512CharactersIsRejected) {
    Event event = MinimalEvent();
    event.tracestate = std::string(513, 'a');
    ExpectInvalid(ValidateEvent(event), "attribute 'tracestate': must be at most 512 characters");
}

TEST(EventValidate, PriorityBoundsAreAccepted) {
    for (int priority : {0, 9}) {
        SCOPED_TRACE(priority);
        Event event = MinimalEvent();
        event.priority = priority;
        EXPECT_TRUE(ValidateEvent(event).ok());
    }
}

TEST(EventValidate, PriorityOutOfRangeIsRejected) {
    for (int priority : {-1, 10, 255, 1000}) {
        SCOPED_TRACE(priority);
        Event event = MinimalEvent();
        event.priority = priority;
        ExpectInvalid(ValidateEvent(event),
                      "attribute 'priority': must be 0..9, got " + std::to_string(priority));
    }
}

TEST(EventValidate, ExtensionNameOf20CharactersIsAccepted) {
    Event event = MinimalEvent();
    event.extensions = {{"abcdefghij0123456789", "x"}};
    EXPECT_TRUE(ValidateEvent(event).ok());
}

TEST(EventValidate, MalformedExtensionNamesAreRejected) {
    for (const char* name :
         {"", "abcdefghij01234567890", "Tenant", "ten_ant", "ten-ant", "tenänt", "data_base64"}) {
        SCOPED_TRACE(name);
        Event event = MinimalEvent();
        event.extensions = {{name, "x"}};
        ExpectInvalid(ValidateEvent(event), "extension name must be 1-20 characters of [a-z0-9]");
    }
}

TEST(EventValidate, MalformedExtensionIsNamed) {
    Event event = MinimalEvent();
    event.extensions = {{"Tenant", "x"}};
    ExpectInvalid(ValidateEvent(event), "attribute 'Tenant': ");
}

TEST(EventValidate, ExtensionCollidingWithKnownAttributeIsRejected) {
    for (const char* name :
         {"id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema",
          "traceparent", "tracestate", "correlationid", "causationid", "partitionkey", "priority",
          "deadline", "data"}) {
        SCOPED_TRACE(name);
        Event event = MinimalEvent();
        event.extensions = {{name, "x"}};
        ExpectInvalid(ValidateEvent(event),
                      "attribute '" + std::string(name) +
                          "': extension name collides with a known attribute");
    }
}

TEST(EventValidate, DuplicateExtensionIsRejected) {
    Event event = MinimalEvent();
    event.extensions = {{"tenant", "a"}, {"region", "b"}, {"tenant", "c"}};
    ExpectInvalid(ValidateEvent(event), "attribute 'tenant': duplicate extension");
}

TEST(EventValidate, DuplicateAmongManyExtensionsIsRejected) {
    Event event = MinimalEvent();
    for (int i = 0; i < 100; ++i) event.extensions.emplace_back("ext" + std::to_string(i), "v");
    event.extensions.emplace_back("ext42", "again");
    ExpectInvalid(ValidateEvent(event), "attribute 'ext42': duplicate extension");
}

TEST(EventValidate, AttributeAtSizeLimitIsAccepted) {
    Event event = MinimalEvent();
    event.subject = std::string(100, 's');
    EXPECT_TRUE(ValidateEvent(event, {.max_attribute_bytes = 100}).ok());
}

TEST(EventValidate, OversizedAttributeIsRejected) {
    const EventLimits limits{.max_attribute_bytes = 100};
    const std::string big(101, 'x');
    struct Case {
        const char* name;
        void (*set)(Event*, const std::string&);
    };
    const Case cases[] = {
        {"id", [](Event* e, const std::string& v) { e->id = v; }},
        {"source", [](Event* e, const std::string& v) { e->source = v; }},
        {"subject", [](Event* e, const std::string& v) { e->subject = v; }},
        {"dataschema", [](Event* e, const std::string& v) { e->dataschema = v; }},
        {"partitionkey", [](Event* e, const std::string& v) { e->partitionkey = v; }},
        {"tenant",
         [](Event* e, const std::string& v) {
             e->extensions = {{"tenant", v}};
         }},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Event event = MinimalEvent();
        c.set(&event, big);
        ExpectInvalid(ValidateEvent(event, limits),
                      "attribute '" + std::string(c.name) + "': value is 101 bytes, limit is 100");
    }
}

TEST(EventValidate, EventAtSizeLimitIsAccepted) {
    Event event = MinimalEvent();
    const size_t attributes = event.id.size() + event.source.size() + event.type.size() + 3;
    event.data = std::string(1000 - attributes, 'd');
    event.has_data = true;
    EXPECT_TRUE(ValidateEvent(event, {.max_event_bytes = 1000}).ok());
}

TEST(EventValidate, OversizedEventIsRejected) {
    Event event = MinimalEvent();
    const size_t attributes = event.id.size() + event.source.size() + event.type.size() + 3;
    event.data = std::string(1001 - attributes, 'd');
    event.has_data = true;
    Status status = ValidateEvent(event, {.max_event_bytes = 1000});
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("event size: event is 1001 bytes, limit is 1000"));
}

TEST(EventValidate, EventSizeCountsExtensionsAndPriority) {
    Event event = MinimalEvent();
    const size_t attributes = event.id.size() + event.source.size() + event.type.size() + 3;
    event.extensions = {{"tenant", std::string(1000 - attributes - 6, 'v')}};
    event.priority = 1;
    ExpectInvalid(ValidateEvent(event, {.max_event_bytes = 1000}), "event is 1001 bytes");
}

TEST(EventValidate, NonUtf8AttributeIsRejected) {
    for (const char* bytes : {"\xff", "ab\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
        SCOPED_TRACE(::testing::PrintToString(std::string(bytes)));
        Event event = MinimalEvent();
        event.subject = bytes;
        ExpectInvalid(ValidateEvent(event), "attribute 'subject': must be valid UTF-8");
    }
}

TEST(EventValidate, NonUtf8ExtensionValueIsRejected) {
    Event event = MinimalEvent();
    event.extensions = {{"tenant", "\xff"}};
    ExpectInvalid(ValidateEvent(event), "attribute 'tenant': must be valid UTF-8");
}

TEST(EventValidate, MultiByteUtf8AttributeIsAccepted) {
    Event event = MinimalEvent();
    event.subject = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5";
    EXPECT_TRUE(ValidateEvent(event).ok());
}

TEST(EventValidate, BinaryDataIsAccepted) {
    Event event = MinimalEvent();
    event.data = std::string("\x00\xff\xfe", 3);
    event.has_data = true;
    EXPECT_TRUE(ValidateEvent(event).ok());
}

TEST(EventValidate, ErrorMessageEscapesUnprintableBytes) {
    Event event = MinimalEvent();
    event.specversion = std::string("1\n\"\xff", 4);
    EXPECT_THAT(ValidateEvent(event).message(), HasSubstr(R"(got "1\x0a\"\xff")"));
}

TEST(FillDefaults, EmptyIdBecomesUuidV7) {
    Event event;
    FillDefaults(&event);
    EXPECT_TRUE(std::regex_match(
        event.id,
        std::regex("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
        << event.id;
}

TEST(FillDefaults, EmptyTimeBecomesUtcWithMicroseconds) {
    Event event;
    FillDefaults(&event);
    EXPECT_TRUE(
        std::regex_match(event.time, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)")))
        << event.time;
}

TEST(FillDefaults, ExistingIdAndTimeAreKept) {
    Event event = FullEvent();
    FillDefaults(&event);
    EXPECT_EQ(event, FullEvent());
}

TEST(FillDefaults, FilledEventIsValid) {
    Event event;
    event.source = "/x";
    event.type = "y";
    FillDefaults(&event);
    Status status = ValidateEvent(event);
    EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(FillDefaults, SuccessiveIdsDiffer) {
    Event first;
    Event second;
    FillDefaults(&first);
    FillDefaults(&second);
    EXPECT_NE(first.id, second.id);
}

}  // namespace
}  // namespace eventloom

namespace eventloom {
namespace {

TEST(ToValidUtf8, ReplacesBadBytesAndKeepsGoodText) {
    EXPECT_EQ(ToValidUtf8("caf\xc3\xa9"), "caf\xc3\xa9");
    EXPECT_EQ(ToValidUtf8("a\xff"
                          "b\xc3"),
              "a?b?");
    EXPECT_TRUE(ValidateEvent([] {
                    Event e;
                    e.id = "x";
                    e.source = "s";
                    e.type = "t";
                    e.subject = ToValidUtf8("\xed\xa0\x80 surrogate");
                    return e;
                }())
                    .ok());
}

}  // namespace
}  // namespace eventloom
