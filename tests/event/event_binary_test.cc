#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "event/event_samples.h"
#include "eventloom/event.h"

namespace eventloom {
namespace {

using ::eventloom::testing::FullEvent;
using ::eventloom::testing::MinimalEvent;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A small event whose encoding the layout tests spell out byte by byte.
Event TinyEvent() {
    Event event;
    event.id = "1";
    event.source = "s";
    event.type = "t";
    return event;
}

// The encoding of TinyEvent(): version, then id, source, type as tag, length, bytes.
const std::string kTinyEncoding = std::string("\x01", 1) +
                                  "\x01\x01"
                                  "1"
                                  "\x02\x01"
                                  "s"
                                  "\x03\x01"
                                  "t";

// Asserts that decoding `bytes` fails with InvalidArgument and a message containing `needle`.
void ExpectRejected(const std::string& bytes, const std::string& needle) {
    Result<Event> event = DecodeEvent(bytes);
    ASSERT_FALSE(event.ok());
    EXPECT_EQ(event.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(event.status().message(), HasSubstr(needle));
}

// ---- layout ----

TEST(EventBinary, EncodingStartsWithVersionOne) {
    EXPECT_THAT(EncodeEvent(FullEvent()), StartsWith("\x01"));
}

TEST(EventBinary, TinyEventHasExactLayout) { EXPECT_EQ(EncodeEvent(TinyEvent()), kTinyEncoding); }

TEST(EventBinary, SpecversionOneIsOmittedAndRestored) {
    Result<Event> event = DecodeEvent(kTinyEncoding);
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(event->specversion, "1.0");
}

TEST(EventBinary, OtherSpecversionIsWritten) {
    Event event = TinyEvent();
    event.specversion = "0.3";
    EXPECT_EQ(EncodeEvent(event), kTinyEncoding +
                                      "\x04\x03"
                                      "0.3");
}

TEST(EventBinary, PriorityIsTagAndOneByte) {
    Event event = TinyEvent();
    event.priority = 7;
    EXPECT_EQ(EncodeEvent(event), kTinyEncoding + "\x15\x07");
}

TEST(EventBinary, ExtensionIsTagNameAndValue) {
    Event event = TinyEvent();
    event.extensions = {{"ab", "xyz"}};
    EXPECT_EQ(EncodeEvent(event), kTinyEncoding +
                                      "\x3e\x02"
                                      "ab"
                                      "\x03"
                                      "xyz");
}

TEST(EventBinary, DataIsTheLastField) {
    Event event = TinyEvent();
    event.data = "hi";
    event.has_data = true;
    event.extensions = {{"ab", "x"}};
    EXPECT_EQ(EncodeEvent(event), kTinyEncoding +
                                      "\x3e\x02"
                                      "ab"
                                      "\x01"
                                      "x"
                                      "\x3f\x02"
                                      "hi");
}

TEST(EventBinary, EmptyDataIsWrittenAndAbsentDataIsNot) {
    Event event = TinyEvent();
    EXPECT_EQ(EncodeEvent(event), kTinyEncoding);
    event.has_data = true;
    EXPECT_EQ(EncodeEvent(event), kTinyEncoding + std::string("\x3f\x00", 2));
}

TEST(EventBinary, LongValueHasMultiByteLength) {
    Event event = TinyEvent();
    event.subject = std::string(300, 's');
    // 300 = 0b10'0101100: low group 0x2c with the continuation bit, then 0x02.
    EXPECT_EQ(EncodeEvent(event), kTinyEncoding + "\x06\xac\x02" + event.subject);
}

TEST(EventBinary, OutOfRangePriorityDoesNotWrapToAValidOne) {
    for (int priority : {256, 265, -1, -247}) {
        SCOPED_TRACE(priority);
        Event event = TinyEvent();
        event.priority = priority;
        Result<Event> decoded = DecodeEvent(EncodeEvent(event));
        ASSERT_FALSE(decoded.ok());
        EXPECT_THAT(decoded.status().message(), HasSubstr("attribute 'priority': must be 0..9"));
    }
}

// ---- round trips ----

TEST(EventBinary, RoundTripPreservesEvent) {
    struct Case {
        const char* description;
        void (*change)(Event*);
    };
    const Case cases[] = {
        {"every attribute and JSON data", [](Event*) {}},
        {"minimal", [](Event* e) { *e = MinimalEvent(); }},
        {"no data",
         [](Event* e) {
             e->has_data = false;
             e->data.clear();
         }},
        {"empty data", [](Event* e) { e->data.clear(); }},
        {"binary data with NUL and high bytes",
         [](Event* e) { e->data = std::string("\x00\x80\xff\x00\x7f", 5); }},
        {"large data", [](Event* e) { e->data = std::string(200000, '\xab'); }},
        {"priority zero", [](Event* e) { e->priority = 0; }},
        {"no priority", [](Event* e) { e->priority.reset(); }},
        {"no extensions", [](Event* e) { e->extensions.clear(); }},
        {"empty extension value",
         [](Event* e) {
             e->extensions = {{"empty", ""}};
         }},
        {"many extensions",
         [](Event* e) {
             for (int i = 0; i < 50; ++i) e->extensions.emplace_back("x" + std::to_string(i), "v");
         }},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        Event event = FullEvent();
        c.change(&event);
        ASSERT_TRUE(ValidateEvent(event).ok());

        Result<Event> decoded = DecodeEvent(EncodeEvent(event));
        ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
        EXPECT_EQ(*decoded, event);
    }
}

TEST(EventBinary, AppendKeepsWhatIsAlreadyThere) {
    std::string buffer = "prefix";
    AppendEncodedEvent(FullEvent(), &buffer);
    EXPECT_EQ(buffer, "prefix" + EncodeEvent(FullEvent()));
}

TEST(EventBinary, AppendedEventsDecodeFromTheirRanges) {
    std::string buffer;
    std::vector<std::pair<size_t, size_t>> ranges;
    for (int i = 0; i < 100; ++i) {
        Event event = FullEvent();
        event.id = "e-" + std::to_string(i);
        const size_t start = buffer.size();
        AppendEncodedEvent(event, &buffer);
        ranges.emplace_back(start, buffer.size() - start);
    }
    for (int i = 0; i < 100; ++i) {
        Result<Event> event =
            DecodeEvent(std::string_view(buffer).substr(ranges[i].first, ranges[i].second));
        ASSERT_TRUE(event.ok()) << event.status().ToString();
        EXPECT_EQ(event->id, "e-" + std::to_string(i));
    }
}

TEST(EventBinary, DecodeAppliesLimits) {
    Result<Event> event = DecodeEvent(EncodeEvent(FullEvent()), {.max_event_bytes = 64});
    ASSERT_FALSE(event.ok());
    EXPECT_THAT(event.status().message(), HasSubstr("event size: event is"));
}

// ---- rejections ----

TEST(EventBinary, EmptyInputIsRejected) { ExpectRejected("", "event encoding: empty input"); }

TEST(EventBinary, UnknownVersionIsRejected) {
    for (int version : {0x00, 0x02, 0xff}) {
        SCOPED_TRACE(version);
        std::string bytes = kTinyEncoding;
        bytes[0] = static_cast<char>(version);
        ExpectRejected(bytes, "unsupported event encoding version " + std::to_string(version));
    }
}

TEST(EventBinary, UnknownTagIsRejected) {
    for (int tag : {0x00, 0x09, 0x17, 0x40, 0xff}) {
        SCOPED_TRACE(tag);
        ExpectRejected(kTinyEncoding + static_cast<char>(tag) + "\x01x",
                       "event encoding: unknown tag");
    }
}

TEST(EventBinary, UnknownTagIsNamedWithItsOffset) {
    ExpectRejected(kTinyEncoding + "\x40\x01x", "unknown tag 0x40 at byte 10");
}

TEST(EventBinary, TruncatedFieldIsRejected) {
    const std::pair<std::string, std::string> cases[] = {
        {kTinyEncoding + "\x06", "attribute 'subject': truncated at byte 10"},
        {kTinyEncoding + "\x06\x05"
                         "abc",
         "attribute 'subject': truncated at byte 10"},
        {kTinyEncoding + "\x06\x80", "attribute 'subject': truncated at byte 10"},
        {kTinyEncoding + "\x15", "attribute 'priority': truncated at byte 10"},
        {kTinyEncoding + "\x3e", "extension name: truncated at byte 10"},
        {kTinyEncoding + "\x3e\x03"
                         "ab",
         "extension name: truncated at byte 10"},
        {kTinyEncoding + "\x3e\x02"
                         "ab",
         "attribute 'ab': truncated at byte 10"},
        {kTinyEncoding + "\x3e\x02"
                         "ab"
                         "\x02"
                         "x",
         "attribute 'ab': truncated at byte 10"},
        {kTinyEncoding + "\x3f\x02"
                         "x",
         "attribute 'data': truncated at byte 10"},
    };
    for (const auto& [bytes, message] : cases) {
        SCOPED_TRACE(message);
        ExpectRejected(bytes, message);
    }
}

TEST(EventBinary, HugeLengthIsTruncationNotAllocation) {
    ExpectRejected(kTinyEncoding + "\x3f\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
                   "attribute 'data': truncated at byte 10");
}

TEST(EventBinary, OverlongLengthIsRejected) {
    for (const char* length : {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
                               "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"}) {
        SCOPED_TRACE(::testing::PrintToString(std::string(length)));
        ExpectRejected(kTinyEncoding + "\x06" + length,
                       "attribute 'subject': invalid length at byte 10");
    }
}

TEST(EventBinary, DuplicateAttributeIsRejected) {
    const std::pair<std::string, std::string> cases[] = {
        {kTinyEncoding + "\x01\x01"
                         "2",
         "attribute 'id': duplicate at byte 10"},
        {kTinyEncoding + "\x06\x01"
                         "a"
                         "\x06\x01"
                         "b",
         "attribute 'subject': duplicate at byte 13"},
        {kTinyEncoding + "\x04\x03"
                         "1.0"
                         "\x04\x03"
                         "1.0",
         "attribute 'specversion': duplicate at byte 15"},
        {kTinyEncoding + "\x15\x01\x15\x02", "attribute 'priority': duplicate at byte 12"},
        {kTinyEncoding + "\x3e\x01"
                         "a"
                         "\x01"
                         "x"
                         "\x3e\x01"
                         "a"
                         "\x01"
                         "y",
         "attribute 'a': duplicate extension"},
    };
    for (const auto& [bytes, message] : cases) {
        SCOPED_TRACE(message);
        ExpectRejected(bytes, message);
    }
}

TEST(EventBinary, FieldAfterDataIsRejected) {
    ExpectRejected(kTinyEncoding +
                       "\x3f\x01"
                       "d"
                       "\x06\x01"
                       "s",
                   "event encoding: unexpected field after data at byte 13");
}

TEST(EventBinary, DecodedEventIsValidated) {
    ExpectRejected(std::string("\x01\x01\x01"
                               "1\x02\x01"
                               "s",
                               7),
                   "attribute 'type': is required");
}

TEST(EventBinary, DecodedPriorityIsValidated) {
    ExpectRejected(kTinyEncoding + "\x15\x0a", "attribute 'priority': must be 0..9, got 10");
}

TEST(EventBinary, DecodedExtensionNameIsValidated) {
    ExpectRejected(kTinyEncoding +
                       "\x3e\x02"
                       "id"
                       "\x01"
                       "x",
                   "attribute 'id': extension name collides with a known attribute");
}

// ---- arbitrary input ----

// Decoding must end in OK or InvalidArgument; an OK result must survive a re-encoding.
void ExpectDecodesSafely(std::string_view bytes) {
    Result<Event> event = DecodeEvent(bytes);
    if (!event.ok()) {
        ASSERT_EQ(event.status().code(), StatusCode::kInvalidArgument) << event.status().ToString();
        return;
    }
    Result<Event> again = DecodeEvent(EncodeEvent(*event));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    ASSERT_EQ(*again, *event);
}

TEST(EventBinary, EveryPrefixDecodesSafely) {
    const std::string bytes = EncodeEvent(FullEvent());
    for (size_t size = 0; size < bytes.size(); ++size) {
        SCOPED_TRACE(size);
        // Copy, so that ASan sees a read past the prefix.
        const std::string prefix = bytes.substr(0, size);
        ExpectDecodesSafely(prefix);
    }
    EXPECT_TRUE(DecodeEvent(bytes).ok());
}

TEST(EventBinary, RandomMutationsDecodeSafely) {
    Event sample = FullEvent();
    sample.data = std::string("\x00\x01\xfe\xff", 4);
    const std::string original = EncodeEvent(sample);
    std::mt19937 rng(20261203);
    auto random_below = [&rng](size_t n) {
        return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
    };
    auto random_byte = [&rng] {
        return static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    };

    int accepted = 0;
    for (int iteration = 0; iteration < 5000; ++iteration) {
        std::string bytes = original;
        const int mutations = 1 + static_cast<int>(random_below(4));
        for (int m = 0; m < mutations && !bytes.empty(); ++m) {
            const size_t at = random_below(bytes.size());
            switch (random_below(5)) {
                case 0:
                    bytes[at] = random_byte();
                    break;
                case 1:
                    bytes[at] = static_cast<char>(bytes[at] ^ (1 << random_below(8)));
                    break;
                case 2:
                    bytes.insert(at, 1, random_byte());
                    break;
                case 3:
                    bytes.erase(at, 1 + random_below(8));
                    break;
                case 4:
                    bytes.resize(at);
                    break;
            }
        }
        SCOPED_TRACE(::testing::PrintToString(bytes));
        ExpectDecodesSafely(bytes);
        if (HasFatalFailure()) return;
        accepted += DecodeEvent(bytes).ok() ? 1 : 0;
    }
    // Some mutations (in values) leave a valid event; most do not.
    EXPECT_GT(accepted, 0);
    EXPECT_LT(accepted, 5000);
}

TEST(EventBinary, RandomBytesDecodeSafely) {
    std::mt19937 rng(42);
    for (int iteration = 0; iteration < 5000; ++iteration) {
        std::string bytes(std::uniform_int_distribution<size_t>(0, 64)(rng), '\0');
        for (char& c : bytes) c = static_cast<char>(rng());
        if (!bytes.empty() && iteration % 2 == 0) bytes[0] = '\x01';  // get past the version
        SCOPED_TRACE(::testing::PrintToString(bytes));
        ExpectDecodesSafely(bytes);
        if (HasFatalFailure()) return;
    }
}

}  // namespace
}  // namespace eventloom
