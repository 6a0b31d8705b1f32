// The event: a CloudEvents 1.0 envelope plus bytes of data.
//
// Attributes absent from an event are empty strings (or nullopt for `priority`). Besides the
// CloudEvents context attributes, eventloom knows these extensions:
//   traceparent, tracestate  W3C trace context (traceparent: 00-<32 hex>-<16 hex>-<2 hex>)
//   correlationid            the id shared by every event of one request or workflow
//   causationid              the id of the event this one was derived from
//   partitionkey             chooses the partition; order is kept per key
//   priority                 0 (default) .. 9; higher is served first
//   deadline                 RFC 3339 time after which the event is no longer worth processing
// Other extensions are kept, in order, as name/value strings.
//
// Two encodings:
//   - the CloudEvents JSON format (structured mode), for HTTP and files; binary data travels as
//     `data_base64`, JSON data as a JSON value, other text as a string;
//   - a compact binary record, the form events take in the log (docs/event-format.md).
// Decoders reject invalid input with InvalidArgument and a message naming the attribute.
//
// Thread-safety: these are free functions over values; concurrent calls on distinct events, or
// const calls on one event, are safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eventloom/status.h"

namespace eventloom {

struct Event {
    // Required context attributes.
    std::string id;
    std::string source;
    std::string type;
    std::string specversion = "1.0";

    // Optional context attributes.
    std::string time;  // RFC 3339
    std::string subject;
    std::string datacontenttype;
    std::string dataschema;  // e.g. "ticket.created/2"

    // eventloom extensions.
    std::string traceparent;
    std::string tracestate;
    std::string correlationid;
    std::string causationid;
    std::string partitionkey;
    std::optional<int> priority;
    std::string deadline;  // RFC 3339

    // Any other extension attributes, in the order they were given.
    std::vector<std::pair<std::string, std::string>> extensions;

    // The payload, as bytes. `has_data` distinguishes "no data" from "empty data".
    std::string data;
    bool has_data = false;

    friend bool operator==(const Event&, const Event&) = default;
};

struct EventLimits {
    size_t max_event_bytes = 1 << 20;  // attributes plus data
    size_t max_attribute_bytes = 4096;
};

// Checks required attributes, specversion, names and formats of known attributes, and size.
// Attribute and extension values must be valid UTF-8 (CloudEvents strings are Unicode) and at
// most `max_attribute_bytes`; the event size is the sum of attribute values, extension names and
// values, one byte for a priority, and the data.
Status ValidateEvent(const Event& event, const EventLimits& limits = {});

// CloudEvents JSON format, one event (a JSON object). The result is validated.
Result<Event> EventFromJson(std::string_view json, const EventLimits& limits = {});
// CloudEvents JSON batch format (a JSON array of event objects).
Result<std::vector<Event>> EventBatchFromJson(std::string_view json,
                                              const EventLimits& limits = {});
// The inverse of EventFromJson: EventFromJson(EventToJson(e)) == e for every valid event. Data
// under a JSON content type (or none) is written as a JSON value when its bytes are exactly the
// compact JSON text of a value; data under another content type as a string when it is UTF-8;
// anything else as `data_base64`. Never throws; does not validate.
std::string EventToJson(const Event& event);

// The compact binary record. Encode never fails for a valid event; Decode validates.
std::string EncodeEvent(const Event& event);
void AppendEncodedEvent(const Event& event, std::string* out);
Result<Event> DecodeEvent(std::string_view bytes, const EventLimits& limits = {});

// `text` with every byte that breaks UTF-8 replaced by '?': for error texts and other foreign
// strings that go into attribute values.
std::string ToValidUtf8(std::string_view text);

// Fills `id` (a new UUIDv7) and `time` (now, UTC) when they are empty.
void FillDefaults(Event* event);

}  // namespace eventloom
