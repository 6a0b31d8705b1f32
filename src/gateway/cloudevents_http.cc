// The CloudEvents HTTP binding: see cloudevents_http.h.
#include "gateway/cloudevents_http.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "event/base64.h"
#include "gateway/openai_json.h"

namespace eventloom::gateway {

namespace {

std::string MediaType(std::string_view content_type) {
    std::string_view media = content_type.substr(0, content_type.find(';'));
    while (!media.empty() && std::isspace(static_cast<unsigned char>(media.back()))) {
        media.remove_suffix(1);
    }
    while (!media.empty() && std::isspace(static_cast<unsigned char>(media.front()))) {
        media.remove_prefix(1);
    }
    std::string out(media);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

Result<Event> BinaryEvent(const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body, const EventLimits& limits) {
    nlohmann::json object = nlohmann::json::object();
    std::string content_type;
    for (const auto& [name, value] : headers) {
        if (name == "content-type") content_type = value;
        if (name.size() <= 3 || name.compare(0, 3, "ce-") != 0) continue;
        std::string attribute = name.substr(3);
        if (attribute == "data" || attribute == "data_base64") {
            return InvalidArgumentError("header '" + name + "' is not an attribute");
        }
        object[attribute] = PercentDecode(value);
    }
    if (!object.contains("specversion")) {
        return InvalidArgumentError(
            "attribute 'specversion' is required: binary mode needs the header 'ce-specversion'"
            " (or send Content-Type application/cloudevents+json)");
    }
    if (!content_type.empty()) object["datacontenttype"] = content_type;
    if (!body.empty() || !content_type.empty()) object["data_base64"] = Base64Encode(body);

    auto event = EventFromJson(DumpJson(object), limits);
    if (!event.ok()) return event.status();
    return std::move(event).value();
}

}  // namespace

CloudEventsMode CloudEventsModeOf(std::string_view content_type) {
    std::string media = MediaType(content_type);
    if (media == "application/cloudevents+json") return CloudEventsMode::kStructured;
    if (media == "application/cloudevents-batch+json") return CloudEventsMode::kBatch;
    return CloudEventsMode::kBinary;
}

std::string PercentDecode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            int hi = HexValue(text[i + 1]);
            int lo = HexValue(text[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(text[i]);
    }
    return out;
}

Result<std::vector<Event>> ParseCloudEventsRequest(
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    const EventLimits& limits) {
    std::string content_type;
    for (const auto& [name, value] : headers) {
        if (name == "content-type") content_type = value;
    }

    switch (CloudEventsModeOf(content_type)) {
        case CloudEventsMode::kStructured: {
            auto event = EventFromJson(body, limits);
            if (!event.ok()) return event.status();
            return std::vector<Event>{std::move(event).value()};
        }
        case CloudEventsMode::kBatch: {
            auto events = EventBatchFromJson(body, limits);
            if (!events.ok()) return events.status();
            if (events->empty()) return InvalidArgumentError("the batch holds no events");
            return std::move(events).value();
        }
        case CloudEventsMode::kBinary:
            break;
    }
    auto event = BinaryEvent(headers, body, limits);
    if (!event.ok()) return event.status();
    return std::vector<Event>{std::move(event).value()};
}

}  // namespace eventloom::gateway
