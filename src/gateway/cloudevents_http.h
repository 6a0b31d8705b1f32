// The CloudEvents HTTP protocol binding (version 1.0), receiving side: turns a request's
// headers and body into events.
//   binary mode      ce-* headers carry the attributes (percent-decoded), Content-Type becomes
//                    datacontenttype, the body is the data;
//   structured mode  Content-Type application/cloudevents+json: the body is one event in the
//                    JSON format;
//   batch mode       Content-Type application/cloudevents-batch+json: a JSON array of events,
//                    all valid or none taken.
// Every event is validated (ValidateEvent); InvalidArgument names the attribute (and, in a
// batch, the event's index). Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eventloom/event.h"
#include "eventloom/status.h"

namespace eventloom::gateway {

enum class CloudEventsMode { kBinary, kStructured, kBatch };

// By the media type of Content-Type (parameters and case ignored).
CloudEventsMode CloudEventsModeOf(std::string_view content_type);

// `headers` are (name, value) pairs with lowercase names.
Result<std::vector<Event>> ParseCloudEventsRequest(
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    const EventLimits& limits = {});

// "%20" -> " "; a malformed escape is kept as is.
std::string PercentDecode(std::string_view text);

}  // namespace eventloom::gateway
