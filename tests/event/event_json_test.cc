#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "event/base64.h"
#include "event/event_samples.h"
#include "eventloom/event.h"

namespace eventloom {
namespace {

using ::eventloom::testing::FullEvent;
using ::eventloom::testing::MinimalEvent;
using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

Json MinimalJson() {
    return {{"specversion", "1.0"}, {"id", "e-1"}, {"source", "/tickets/api"}, {"type", "t"}};
}

Json With(std::string name, Json value) {
    Json json = MinimalJson();
    json[name] = std::move(value);
    return json;
}

Result<Event> Parse(const Json& json) { return EventFromJson(json.dump()); }

// Asserts that parsing `json` fails with InvalidArgument and a message containing `needle`.
void ExpectRejected(const Json& json, const std::string& needle) {
    Result<Event> event = Parse(json);
    ASSERT_FALSE(event.ok()) << json.dump();
    EXPECT_EQ(event.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(event.status().message(), HasSubstr(needle));
}

// The data bytes of the event `json` parses to; fails the test when it does not parse.
std::string DataOf(const Json& json) {
    Result<Event> event = Parse(json);
    EXPECT_TRUE(event.ok()) << event.status().ToString();
    if (!event.ok()) return "<error>";
    EXPECT_TRUE(event->has_data);
    return event->data;
}

// ---- EventFromJson: attributes ----

TEST(EventJson, MinimalEventIsParsed) {
    Result<Event> event = Parse(MinimalJson());
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(event->id, "e-1");
    EXPECT_EQ(event->source, "/tickets/api");
    EXPECT_EQ(event->type, "t");
    EXPECT_EQ(event->specversion, "1.0");
    EXPECT_FALSE(event->has_data);
}

TEST(EventJson, EveryKnownAttributeIsParsed) {
    const char* json = R"({
        "specversion": "1.0",
        "id": "0192f0c1-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
        "source": "/tickets/api",
        "type": "ticket.created",
        "time": "2026-12-03T15:42:42.123456Z",
        "subject": "ticket/42",
        "datacontenttype": "application/json",
        "dataschema": "ticket.created/2",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        "correlationid": "req-7",
        "causationid": "0192f0c1-0000-7000-8000-000000000001",
        "partitionkey": "customer-9",
        "priority": 7,
        "deadline": "2026-12-03T16:42:42+01:00",
        "tenant": "acme",
        "region": "eu1",
        "data": {"title": "printer on fire", "tags": ["hw", "urgent"]}
    })";
    Result<Event> event = EventFromJson(json);
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(*event, FullEvent());
}

TEST(EventJson, MissingRequiredAttributeIsRejected) {
    for (const char* name : {"id", "source", "type", "specversion"}) {
        SCOPED_TRACE(name);
        Json json = MinimalJson();
        json.erase(name);
        ExpectRejected(json, "attribute '" + std::string(name) + "': is required");
    }
}

TEST(EventJson, MissingTypeIsRejected) {
    Json json = MinimalJson();
    json.erase("type");
    ExpectRejected(json, "attribute 'type': is required");
}

TEST(EventJson, WrongSpecversionIsRejected) {
    ExpectRejected(With("specversion", "0.3"),
                   "attribute 'specversion': must be \"1.0\", got \"0.3\"");
}

TEST(EventJson, NullAttributeIsTreatedAsAbsent) {
    Result<Event> event = Parse(With("subject", nullptr));
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(*event, Parse(MinimalJson()).value());
}

TEST(EventJson, NullRequiredAttributeIsRejected) {
    ExpectRejected(With("id", nullptr), "attribute 'id': is required");
}

TEST(EventJson, NonObjectIsRejected) {
    for (const char* json : {"[]", "\"event\"", "42", "null", "true"}) {
        SCOPED_TRACE(json);
        Result<Event> event = EventFromJson(json);
        ASSERT_FALSE(event.ok());
        EXPECT_EQ(event.status().code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(event.status().message(), HasSubstr("event must be a JSON object"));
    }
}

TEST(EventJson, MalformedJsonIsRejectedWithBytePosition) {
    Result<Event> event = EventFromJson(R"({"id": })");
    ASSERT_FALSE(event.ok());
    EXPECT_EQ(event.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(event.status().message(), HasSubstr("invalid JSON at byte 8"));
}

TEST(EventJson, EmptyInputIsRejected) {
    Result<Event> event = EventFromJson("");
    ASSERT_FALSE(event.ok());
    EXPECT_THAT(event.status().message(), HasSubstr("invalid JSON at byte"));
}

TEST(EventJson, TrailingGarbageIsRejected) {
    Result<Event> event = EventFromJson(MinimalJson().dump() + " x");
    ASSERT_FALSE(event.ok());
    EXPECT_THAT(event.status().message(), HasSubstr("invalid JSON at byte"));
}

TEST(EventJson, InvalidUtf8IsRejected) {
    Result<Event> event = EventFromJson("{\"id\": \"\xff\"}");
    ASSERT_FALSE(event.ok());
    EXPECT_THAT(event.status().message(), HasSubstr("invalid JSON at byte"));
}

TEST(EventJson, NonStringAttributeIsRejected) {
    for (const char* name : {"id", "source", "type", "specversion", "time", "subject",
                             "datacontenttype", "dataschema", "traceparent", "tracestate",
                             "correlationid", "causationid", "partitionkey", "deadline"}) {
        for (const Json& value : {Json(42), Json(true), Json::array(), Json::object()}) {
            SCOPED_TRACE(std::string(name) + " = " + value.dump());
            ExpectRejected(With(name, value), "attribute '" + std::string(name) +
                                                  "': must be a string, got " + value.type_name());
        }
    }
}

TEST(EventJson, AttributeFormatsAreValidated) {
    ExpectRejected(With("traceparent", "00-abc"), "attribute 'traceparent': ");
}

TEST(EventJson, LimitsAreApplied) {
    Result<Event> event = EventFromJson(MinimalJson().dump(), {.max_event_bytes = 10});
    ASSERT_FALSE(event.ok());
    EXPECT_THAT(event.status().message(), HasSubstr("event size: event is"));
}

// ---- priority ----

TEST(EventJson, PriorityIntegerIsParsed) {
    Result<Event> event = Parse(With("priority", 5));
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(event->priority, 5);
}

TEST(EventJson, PriorityNumericStringIsParsed) {
    Result<Event> event = Parse(With("priority", "5"));
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(event->priority, 5);
}

TEST(EventJson, NullPriorityIsAbsent) {
    Result<Event> event = Parse(With("priority", nullptr));
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_FALSE(event->priority.has_value());
}

TEST(EventJson, NonIntegerPriorityIsRejected) {
    for (const Json& value : {Json(5.5), Json(5.0), Json("five"), Json(" 5"), Json("5x"), Json(""),
                              Json("+5"), Json(true), Json::array({5})}) {
        SCOPED_TRACE(value.dump());
        ExpectRejected(With("priority", value),
                       "attribute 'priority': must be an integer or a string of digits");
    }
}

TEST(EventJson, OutOfRangePriorityIsRejected) {
    for (const Json& value :
         {Json(10), Json(-1), Json("12"), Json("-3"), Json(99999999999), Json(-99999999999),
          Json(18446744073709551615u), Json("99999999999")}) {
        SCOPED_TRACE(value.dump());
        ExpectRejected(With("priority", value), "attribute 'priority': must be 0..9, got ");
    }
}

// ---- extensions ----

TEST(EventJson, StringExtensionIsKept) {
    Result<Event> event = Parse(With("tenant", "acme"));
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(event->extensions, (decltype(Event::extensions){{"tenant", "acme"}}));
}

TEST(EventJson, NumberAndBooleanExtensionsBecomeJsonText) {
    const std::pair<Json, std::string> cases[] = {
        {Json(5), "5"},       {Json(-5), "-5"},       {Json(2.5), "2.5"},
        {Json(true), "true"}, {Json(false), "false"},
    };
    for (const auto& [value, text] : cases) {
        SCOPED_TRACE(value.dump());
        Result<Event> event = Parse(With("ext", value));
        ASSERT_TRUE(event.ok()) << event.status().ToString();
        EXPECT_EQ(event->extensions, (decltype(Event::extensions){{"ext", text}}));
    }
}

TEST(EventJson, ExtensionsKeepTheirOrder) {
    Json json = MinimalJson();
    for (const char* name : {"zeta", "alpha", "mid"}) json[name] = name;
    Result<Event> event = Parse(json);
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(event->extensions,
              (decltype(Event::extensions){{"zeta", "zeta"}, {"alpha", "alpha"}, {"mid", "mid"}}));
}

TEST(EventJson, NullExtensionIsAbsent) {
    Result<Event> event = Parse(With("tenant", nullptr));
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_TRUE(event->extensions.empty());
}

TEST(EventJson, StructuredExtensionIsRejected) {
    for (const Json& value : {Json::object({{"a", 1}}), Json::array({1})}) {
        SCOPED_TRACE(value.dump());
        ExpectRejected(With("tenant", value),
                       "attribute 'tenant': must be a string, number or boolean");
    }
}

TEST(EventJson, MalformedExtensionNameIsRejected) {
    ExpectRejected(With("Tenant_Id", "acme"),
                   "attribute 'Tenant_Id': extension name must be 1-20 characters of [a-z0-9]");
}

// ---- data ----

TEST(EventJson, DataAndDataBase64TogetherAreRejected) {
    Json json = With("data", "x");
    json["data_base64"] = "eA==";
    ExpectRejected(json, "attribute 'data': must not be present together with 'data_base64'");
}

TEST(EventJson, DataBase64IsDecoded) {
    EXPECT_EQ(DataOf(With("data_base64", "AP+A")), std::string("\x00\xff\x80", 3));
}

TEST(EventJson, EmptyDataBase64IsEmptyData) { EXPECT_EQ(DataOf(With("data_base64", "")), ""); }

TEST(EventJson, NullDataBase64IsAbsent) {
    Result<Event> event = Parse(With("data_base64", nullptr));
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_FALSE(event->has_data);
}

TEST(EventJson, InvalidBase64IsRejected) {
    for (const char* text : {"AP+A!", "AP A", "A", "AP=A", "AP===", "APA=A", "AQ=", "AR=="}) {
        SCOPED_TRACE(text);
        ExpectRejected(With("data_base64", text), "attribute 'data_base64': invalid base64");
    }
}

TEST(EventJson, NonStringDataBase64IsRejected) {
    ExpectRejected(With("data_base64", 42), "attribute 'data_base64': must be a string");
}

TEST(EventJson, JsonDataIsKeptAsCompactJson) {
    Result<Event> event = EventFromJson(
        R"({"specversion":"1.0","id":"1","source":"s","type":"t",
            "data": { "b" : 1 , "a" : [ 1, 2.5, "x" ], "c": null }})");
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_EQ(event->data, R"({"b":1,"a":[1,2.5,"x"],"c":null})");
}

TEST(EventJson, StringDataWithJsonContentTypeKeepsItsQuotes) {
    EXPECT_EQ(DataOf(With("data", "I'm just a string")), "\"I'm just a string\"");
}

TEST(EventJson, StringDataWithTextContentTypeIsTheText) {
    Json json = With("datacontenttype", "text/plain");
    json["data"] = "line one\nline two";
    EXPECT_EQ(DataOf(json), "line one\nline two");
}

TEST(EventJson, NumberDataWithTextContentTypeIsItsJsonText) {
    Json json = With("datacontenttype", "text/plain");
    json["data"] = 42;
    EXPECT_EQ(DataOf(json), "42");
}

TEST(EventJson, NullDataIsAnExplicitPayload) { EXPECT_EQ(DataOf(With("data", nullptr)), "null"); }

TEST(EventJson, JsonContentTypesAreRecognized) {
    for (const char* type : {"application/json", "text/json", "application/cloudevents+json",
                             "application/vnd.api+json", "application/json; charset=utf-8",
                             "APPLICATION/JSON", " application/json "}) {
        SCOPED_TRACE(type);
        Json json = With("datacontenttype", type);
        json["data"] = "s";
        EXPECT_EQ(DataOf(json), "\"s\"");
    }
}

TEST(EventJson, OtherContentTypesAreText) {
    for (const char* type : {"text/plain", "application/xml", "application/octet-stream",
                             "application/jsonl", "application/json-seq", "json"}) {
        SCOPED_TRACE(type);
        Json json = With("datacontenttype", type);
        json["data"] = "s";
        EXPECT_EQ(DataOf(json), "s");
    }
}

TEST(EventJson, DeeplyNestedDataIsRejected) {
    const std::string data = std::string(100000, '[') + std::string(100000, ']');
    Result<Event> event = EventFromJson(
        R"({"specversion":"1.0","id":"1","source":"s","type":"t","data":)" + data + "}");
    ASSERT_FALSE(event.ok());
    EXPECT_THAT(event.status().message(), HasSubstr("invalid JSON: nested deeper than"));
}

TEST(EventJson, ModeratelyNestedDataIsAccepted) {
    const std::string data = std::string(60, '[') + std::string(60, ']');
    EXPECT_EQ(DataOf(With("data", Json::parse(data))), data);
}

// ---- EventToJson ----

TEST(EventToJson, AttributesComeInSpecOrder) {
    EXPECT_EQ(EventToJson(MinimalEvent()),
              R"({"specversion":"1.0","id":"0192f0c1-7a2b-7c3d-8e4f-5a6b7c8d9e0f",)"
              R"("source":"/tickets/api","type":"ticket.created"})");
}

TEST(EventToJson, AbsentDataIsOmitted) {
    const Json json = Json::parse(EventToJson(MinimalEvent()));
    EXPECT_FALSE(json.contains("data"));
    EXPECT_FALSE(json.contains("data_base64"));
}

TEST(EventToJson, PriorityIsAnInteger) {
    Event event = MinimalEvent();
    event.priority = 3;
    EXPECT_EQ(Json::parse(EventToJson(event))["priority"], Json(3));
}

TEST(EventToJson, JsonDataIsAValue) {
    Event event = MinimalEvent();
    event.data = R"({"a":[1,2]})";
    event.has_data = true;
    EXPECT_EQ(Json::parse(EventToJson(event))["data"], Json::parse(event.data));
}

TEST(EventToJson, NonCanonicalJsonDataIsBase64) {
    Event event = MinimalEvent();
    event.data = R"({ "a": 1 })";
    event.has_data = true;
    EXPECT_EQ(Json::parse(EventToJson(event))["data_base64"], Base64Encode(event.data));
}

TEST(EventToJson, InvalidJsonDataIsBase64) {
    Event event = MinimalEvent();
    event.datacontenttype = "application/json";
    event.data = "not json";
    event.has_data = true;
    EXPECT_EQ(Json::parse(EventToJson(event))["data_base64"], "bm90IGpzb24=");
}

TEST(EventToJson, TextDataIsAString) {
    Event event = MinimalEvent();
    event.datacontenttype = "text/plain";
    event.data = "caf\xc3\xa9";
    event.has_data = true;
    EXPECT_EQ(Json::parse(EventToJson(event))["data"], "caf\xc3\xa9");
}

TEST(EventToJson, BinaryDataIsBase64) {
    Event event = MinimalEvent();
    event.datacontenttype = "application/octet-stream";
    event.data = std::string("\x00\xff", 2);
    event.has_data = true;
    EXPECT_EQ(Json::parse(EventToJson(event))["data_base64"], "AP8=");
}

TEST(EventToJson, InvalidUtf8AttributeDoesNotThrow) {
    Event event = MinimalEvent();
    event.subject = "\xff";
    EXPECT_NO_THROW(EventToJson(event));
}

TEST(EventToJson, DeeplyNestedJsonDataIsBase64) {
    Event event = MinimalEvent();
    event.data = std::string(100000, '[') + std::string(100000, ']');
    event.has_data = true;
    Result<Event> back = EventFromJson(EventToJson(event));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->data, event.data);
}

TEST(EventToJson, RoundTripPreservesEvent) {
    struct Case {
        const char* description;
        const char* content_type;
        std::optional<std::string> data;  // nullopt: no data
    };
    const Case cases[] = {
        {"no data", "", std::nullopt},
        {"no data, text type", "text/plain", std::nullopt},
        {"empty data, JSON type", "", ""},
        {"empty data, text type", "text/plain", ""},
        {"JSON object", "application/json", R"({"b":1,"a":[true,null,2.5,"x"]})"},
        {"JSON object, implied type", "", R"({"k":"v"})"},
        {"JSON string", "", R"("just a string")"},
        {"JSON null", "", "null"},
        {"JSON number", "application/cloudevents+json", "42"},
        {"JSON with parameters", "application/json; charset=utf-8", "[1,2]"},
        {"non-canonical JSON", "application/json", "{ \"a\" : 1 }\n"},
        {"not JSON under a JSON type", "application/json", "plain words"},
        {"text", "text/plain", "hello\nworld"},
        {"text that looks like JSON", "text/plain", R"({"a":1})"},
        {"unicode text", "text/plain; charset=utf-8", "caf\xc3\xa9 \xf0\x9f\x94\xa5"},
        {"text with NUL", "text/plain", std::string("a\0b", 3)},
        {"binary", "application/octet-stream", std::string("\x00\x01\x80\xfe\xff\x00", 6)},
        {"binary, implied JSON type", "", std::string("\x00\xff", 2)},
        {"invalid UTF-8 under a text type", "text/plain", "caf\xe9"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        Event event = FullEvent();
        event.datacontenttype = c.content_type;
        event.data = c.data.value_or("");
        event.has_data = c.data.has_value();
        ASSERT_TRUE(ValidateEvent(event).ok());

        const std::string json = EventToJson(event);
        Result<Event> back = EventFromJson(json);
        ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << json;
        EXPECT_EQ(*back, event) << json;
    }
}

TEST(EventToJson, RoundTripPreservesAttributeVariants) {
    struct Case {
        const char* description;
        void (*change)(Event*);
    };
    const Case cases[] = {
        {"minimal", [](Event* e) { *e = MinimalEvent(); }},
        {"priority zero", [](Event* e) { e->priority = 0; }},
        {"no priority", [](Event* e) { e->priority.reset(); }},
        {"numeric-looking extensions",
         [](Event* e) {
             e->extensions = {{"count", "42"}, {"flag", "true"}, {"empty", ""}};
         }},
        {"extension with quotes",
         [](Event* e) {
             e->extensions = {{"q", "say \"hi\"\\"}};
         }},
        {"unicode subject", [](Event* e) { e->subject = "\xe2\x82\xac/\xf0\x9f\x94\xa5"; }},
        {"twenty extensions",
         [](Event* e) {
             for (int i = 0; i < 20; ++i) e->extensions.emplace_back("x" + std::to_string(i), "v");
         }},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        Event event = FullEvent();
        c.change(&event);
        ASSERT_TRUE(ValidateEvent(event).ok());

        const std::string json = EventToJson(event);
        Result<Event> back = EventFromJson(json);
        ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << json;
        EXPECT_EQ(*back, event) << json;
    }
}

TEST(EventToJson, RoundTripPreservesEveryByteValue) {
    Event event = MinimalEvent();
    event.datacontenttype = "application/octet-stream";
    for (int i = 0; i < 256; ++i) event.data.push_back(static_cast<char>(i));
    event.has_data = true;
    Result<Event> back = EventFromJson(EventToJson(event));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, event);
}

// ---- EventBatchFromJson ----

TEST(EventBatchJson, ArrayOfEventsIsParsed) {
    Json batch = Json::array({MinimalJson(), With("id", "e-2")});
    Result<std::vector<Event>> events = EventBatchFromJson(batch.dump());
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ((*events)[0].id, "e-1");
    EXPECT_EQ((*events)[1].id, "e-2");
}

TEST(EventBatchJson, EmptyArrayIsEmptyBatch) {
    Result<std::vector<Event>> events = EventBatchFromJson("[]");
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    EXPECT_TRUE(events->empty());
}

TEST(EventBatchJson, NonArrayIsRejected) {
    Result<std::vector<Event>> events = EventBatchFromJson(MinimalJson().dump());
    ASSERT_FALSE(events.ok());
    EXPECT_EQ(events.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(events.status().message(), HasSubstr("event batch must be a JSON array"));
}

TEST(EventBatchJson, ErrorNamesTheEventIndex) {
    Json bad = MinimalJson();
    bad.erase("type");
    Json batch = Json::array({MinimalJson(), MinimalJson(), MinimalJson(), bad});
    Result<std::vector<Event>> events = EventBatchFromJson(batch.dump());
    ASSERT_FALSE(events.ok());
    EXPECT_EQ(events.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(events.status().message(), HasSubstr("event [3]: attribute 'type': is required"));
}

TEST(EventBatchJson, NonObjectElementIsRejected) {
    Result<std::vector<Event>> events =
        EventBatchFromJson("[" + MinimalJson().dump() + ", \"oops\"]");
    ASSERT_FALSE(events.ok());
    EXPECT_THAT(events.status().message(), HasSubstr("event [1]: event must be a JSON object"));
}

TEST(EventBatchJson, MalformedJsonIsRejected) {
    Result<std::vector<Event>> events = EventBatchFromJson("[{]");
    ASSERT_FALSE(events.ok());
    EXPECT_THAT(events.status().message(), HasSubstr("invalid JSON at byte"));
}

// ---- Base64 ----

const std::pair<std::string, std::string> kRfc4648Vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(Base64, EncodesRfc4648Vectors) {
    for (const auto& [bytes, text] : kRfc4648Vectors) {
        SCOPED_TRACE(bytes);
        EXPECT_EQ(Base64Encode(bytes), text);
    }
}

TEST(Base64, DecodesRfc4648Vectors) {
    for (const auto& [bytes, text] : kRfc4648Vectors) {
        SCOPED_TRACE(text);
        Result<std::string> decoded = Base64Decode(text);
        ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
        EXPECT_EQ(*decoded, bytes);
    }
}

TEST(Base64, UnpaddedInputIsDecoded) {
    for (const auto& [bytes, text] : kRfc4648Vectors) {
        SCOPED_TRACE(text);
        const std::string unpadded = text.substr(0, text.find('='));
        Result<std::string> decoded = Base64Decode(unpadded);
        ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
        EXPECT_EQ(*decoded, bytes);
    }
}

TEST(Base64, InvalidInputIsRejectedWithOffset) {
    const std::pair<const char*, const char*> cases[] = {
        {"Zm9v!", "offset 4: not a base64 character"},
        {"Zm 9v", "offset 2: not a base64 character"},
        {"Zm=v", "offset 2: not a base64 character"},
        {"Z", "offset 0: truncated"},
        {"Zm9vY", "offset 4: truncated"},
        {"Zg=", "offset 2: incomplete padding"},
        {"Z===", "offset 1: too much padding"},
        {"Zh==", "offset 1: non-zero bits"},
        {"Zm9=", "offset 2: non-zero bits"},
    };
    for (const auto& [text, message] : cases) {
        SCOPED_TRACE(text);
        Result<std::string> decoded = Base64Decode(text);
        ASSERT_FALSE(decoded.ok());
        EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(decoded.status().message(), HasSubstr(message));
    }
}

TEST(Base64, EveryLengthRoundTrips) {
    std::string bytes;
    for (int i = 0; i < 300; ++i) {
        Result<std::string> decoded = Base64Decode(Base64Encode(bytes));
        ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
        ASSERT_EQ(*decoded, bytes);
        bytes.push_back(static_cast<char>(i * 37));
    }
}

}  // namespace
}  // namespace eventloom
