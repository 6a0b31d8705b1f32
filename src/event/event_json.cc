// The CloudEvents 1.0 JSON format (structured mode) and its batch format.
//
// Objects are read and written with nlohmann::ordered_json so that extensions keep their order
// and JSON data keeps its member order. nlohmann throws; every call that can throw is wrapped
// here, and nothing escapes as an exception.

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "event/base64.h"
#include "event/event_internal.h"
#include "eventloom/event.h"

namespace eventloom {
namespace {

using Json = nlohmann::ordered_json;
using event_internal::AttributeError;
using event_internal::StringAttribute;

// Deeper documents are rejected: dumping a value recurses once per level, so unbounded nesting
// could exhaust the stack.
constexpr int kMaxJsonDepth = 64;

// Parses `text`, rejecting nesting deeper than kMaxJsonDepth.
Status ParseJson(std::string_view text, Json* out) {
    bool too_deep = false;
    Json::parser_callback_t limit_depth = [&too_deep](int depth, Json::parse_event_t event,
                                                      Json& /*parsed*/) {
        const bool opens =
            event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start;
        if (opens && depth >= kMaxJsonDepth) {
            too_deep = true;
            return false;  // skip the subtree rather than build it
        }
        return true;
    };
    try {
        *out = Json::parse(text.data(), text.data() + text.size(), limit_depth);
    } catch (const Json::parse_error& e) {
        // what() is "[json.exception.parse_error.101] parse error at line 1, ...".
        std::string_view what = e.what();
        const size_t prefix_end = what.find("] ");
        if (prefix_end != std::string_view::npos) what.remove_prefix(prefix_end + 2);
        return InvalidArgumentError("invalid JSON at byte " + std::to_string(e.byte) + ": " +
                                    std::string(what));
    } catch (const Json::exception& e) {
        return InvalidArgumentError(std::string("invalid JSON: ") + e.what());
    }
    if (too_deep) {
        return InvalidArgumentError("invalid JSON: nested deeper than " +
                                    std::to_string(kMaxJsonDepth) + " levels");
    }
    return Status::Ok();
}

// Compact JSON text. Strings in a parsed value are valid UTF-8, so this does not throw for them;
// elsewhere invalid UTF-8 is replaced rather than thrown.
std::string Dump(const Json& value) {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string_view TrimSpace(std::string_view text) {
    const size_t begin = text.find_first_not_of(" \t");
    if (begin == std::string_view::npos) return {};
    const size_t end = text.find_last_not_of(" \t");
    return text.substr(begin, end - begin + 1);
}

bool EndsWithIgnoringCase(std::string_view text, std::string_view suffix) {
    if (text.size() < suffix.size()) return false;
    text.remove_prefix(text.size() - suffix.size());
    for (size_t i = 0; i < suffix.size(); ++i) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != suffix[i]) return false;
    }
    return true;
}

// True when `content_type` declares JSON data: absent, or a media type (parameters stripped) of
// the form */json or */*+json, as the CloudEvents JSON format defines it.
bool IsJsonContentType(std::string_view content_type) {
    if (content_type.empty()) return true;
    const std::string_view media_type = TrimSpace(content_type.substr(0, content_type.find(';')));
    return EndsWithIgnoringCase(media_type, "/json") || EndsWithIgnoringCase(media_type, "+json");
}

Status ReadString(std::string_view name, const Json& value, std::string* out) {
    if (!value.is_string()) {
        return AttributeError(name, std::string("must be a string, got ") + value.type_name());
    }
    *out = value.get_ref<const std::string&>();
    return Status::Ok();
}

// A JSON integer, or a string holding one ("5").
Status ReadPriority(const Json& value, std::optional<int>* out) {
    auto out_of_range = [](std::string_view got) {
        return AttributeError("priority", "must be 0..9, got " + std::string(got));
    };

    if (value.is_number_unsigned()) {
        const auto number = value.get<uint64_t>();
        if (number > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
            return out_of_range(std::to_string(number));
        }
        *out = static_cast<int>(number);
        return Status::Ok();
    }
    if (value.is_number_integer()) {
        const auto number = value.get<int64_t>();
        if (number < std::numeric_limits<int>::min() || number > std::numeric_limits<int>::max()) {
            return out_of_range(std::to_string(number));
        }
        *out = static_cast<int>(number);
        return Status::Ok();
    }
    const std::string expected = "must be an integer or a string of digits, got ";
    if (!value.is_string()) return AttributeError("priority", expected + Dump(value));

    const std::string& text = value.get_ref<const std::string&>();
    int number = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (end != text.data() + text.size() ||
        (error != std::errc() && error != std::errc::result_out_of_range)) {
        return AttributeError("priority", expected + event_internal::Quote(text));
    }
    if (error == std::errc::result_out_of_range) return out_of_range(event_internal::Quote(text));
    *out = number;
    return Status::Ok();
}

// Unknown attributes: strings as they are, numbers and booleans as their JSON text.
Status ReadExtension(const std::string& name, const Json& value, Event* event) {
    if (value.is_string()) {
        event->extensions.emplace_back(name, value.get_ref<const std::string&>());
    } else if (value.is_number() || value.is_boolean()) {
        event->extensions.emplace_back(name, Dump(value));
    } else {
        return AttributeError(
            name, std::string("must be a string, number or boolean, got ") + value.type_name());
    }
    return Status::Ok();
}

// `data_base64` holds the bytes; `data` holds text for non-JSON content types and a JSON value
// (kept as its compact text) otherwise.
Status ReadData(const Json* data, const Json* data_base64, Event* event) {
    if (data != nullptr && data_base64 != nullptr) {
        return AttributeError("data", "must not be present together with 'data_base64'");
    }
    if (data_base64 != nullptr) {
        if (!data_base64->is_string()) {
            return AttributeError("data_base64",
                                  std::string("must be a string, got ") + data_base64->type_name());
        }
        Result<std::string> bytes = Base64Decode(data_base64->get_ref<const std::string&>());
        if (!bytes.ok()) return AttributeError("data_base64", bytes.status().message());
        event->data = std::move(bytes).value();
        event->has_data = true;
    } else if (data != nullptr) {
        if (data->is_string() && !IsJsonContentType(event->datacontenttype)) {
            event->data = data->get_ref<const std::string&>();
        } else {
            event->data = Dump(*data);
        }
        event->has_data = true;
    }
    return Status::Ok();
}

Result<Event> EventFromJsonValue(const Json& object, const EventLimits& limits) {
    if (!object.is_object()) {
        return InvalidArgumentError(std::string("event must be a JSON object, got ") +
                                    object.type_name());
    }

    // specversion is required in JSON: start without the struct's default.
    Event event;
    event.specversion.clear();
    const Json* data = nullptr;
    const Json* data_base64 = nullptr;
    for (auto it = object.begin(); it != object.end(); ++it) {
        const std::string& name = it.key();
        const Json& value = it.value();

        // A null attribute is an absent one (the JSON format, section 2.2); `data` is the
        // exception: null there is a payload.
        if (value.is_null() && name != "data") continue;
        if (const StringAttribute* attribute = event_internal::FindStringAttribute(name)) {
            EVENTLOOM_RETURN_IF_ERROR(ReadString(name, value, &(event.*attribute->member)));
        } else if (name == "priority") {
            EVENTLOOM_RETURN_IF_ERROR(ReadPriority(value, &event.priority));
        } else if (name == "data") {
            data = &value;
        } else if (name == "data_base64") {
            data_base64 = &value;
        } else {
            EVENTLOOM_RETURN_IF_ERROR(ReadExtension(name, value, &event));
        }
    }
    EVENTLOOM_RETURN_IF_ERROR(ReadData(data, data_base64, &event));

    EVENTLOOM_RETURN_IF_ERROR(ValidateEvent(event, limits));
    return event;
}

// The data as a JSON value when that reproduces its bytes exactly, so that reading the event
// back gives the same bytes.
std::optional<Json> DataAsJsonValue(std::string_view data) {
    Json value;
    if (!ParseJson(data, &value).ok()) return std::nullopt;
    if (Dump(value) != data) return std::nullopt;
    return value;
}

}  // namespace

Result<Event> EventFromJson(std::string_view json, const EventLimits& limits) {
    Json value;
    EVENTLOOM_RETURN_IF_ERROR(ParseJson(json, &value));
    return EventFromJsonValue(value, limits);
}

Result<std::vector<Event>> EventBatchFromJson(std::string_view json, const EventLimits& limits) {
    Json value;
    EVENTLOOM_RETURN_IF_ERROR(ParseJson(json, &value));
    if (!value.is_array()) {
        return InvalidArgumentError(std::string("event batch must be a JSON array, got ") +
                                    value.type_name());
    }

    std::vector<Event> events;
    events.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
        Result<Event> event = EventFromJsonValue(std::as_const(value)[i], limits);
        if (!event.ok()) return event.status().WithContext("event [" + std::to_string(i) + "]");
        events.push_back(std::move(event).value());
    }
    return events;
}

std::string EventToJson(const Event& event) {
    Json object = Json::object();
    object["specversion"] = event.specversion;
    for (const StringAttribute& attribute : event_internal::kStringAttributes) {
        const std::string& value = event.*attribute.member;
        if (attribute.name == "specversion" || value.empty()) continue;
        object[std::string(attribute.name)] = value;
    }
    if (event.priority.has_value()) object["priority"] = *event.priority;
    for (const auto& [name, value] : event.extensions) object[name] = value;

    if (event.has_data) {
        const bool json_type = IsJsonContentType(event.datacontenttype);
        std::optional<Json> json_data;
        if (json_type) json_data = DataAsJsonValue(event.data);
        if (json_data.has_value()) {
            object["data"] = std::move(*json_data);
        } else if (!json_type && event_internal::IsValidUtf8(event.data)) {
            object["data"] = event.data;
        } else {
            object["data_base64"] = Base64Encode(event.data);
        }
    }
    return Dump(object);
}

}  // namespace eventloom
