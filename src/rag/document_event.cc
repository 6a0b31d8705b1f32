#include "rag/document_event.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string_view>

namespace eventloom::rag {
namespace {

constexpr size_t kMaxIdBytes = 1024;

bool EndsWith(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string TypeName(const nlohmann::json& value) {
    switch (value.type()) {
        case nlohmann::json::value_t::array:
            return "an array";
        case nlohmann::json::value_t::object:
            return "an object";
        case nlohmann::json::value_t::null:
            return "null";
        case nlohmann::json::value_t::string:
            return "a string";
        case nlohmann::json::value_t::boolean:
            return "a boolean";
        default:
            return "a number";
    }
}

}  // namespace

Result<DocumentChange> ParseDocumentEvent(const Event& event) {
    const std::string name = fmt::format("document event '{}'", event.id);
    if (!event.has_data || event.data.empty()) {
        return InvalidArgumentError(name + ": has no data; expected a JSON object with 'id'");
    }
    const nlohmann::json data = nlohmann::json::parse(event.data, nullptr, false);
    if (data.is_discarded()) {
        return InvalidArgumentError(name + ": data is not JSON; expected a JSON object with 'id'");
    }
    if (!data.is_object()) {
        return InvalidArgumentError(
            fmt::format("{}: data is {}; expected a JSON object with 'id'", name, TypeName(data)));
    }
    DocumentChange change;
    auto id = data.find("id");
    if (id == data.end()) return InvalidArgumentError(name + ": data has no 'id'");
    if (!id->is_string()) {
        return InvalidArgumentError(
            fmt::format("{}: id: expected a string, got {}", name, TypeName(*id)));
    }
    change.id = id->get<std::string>();
    if (change.id.empty()) return InvalidArgumentError(name + ": id: is empty");
    if (change.id.size() > kMaxIdBytes) {
        return InvalidArgumentError(fmt::format("{}: id: is {} bytes long; at most {}", name,
                                                change.id.size(), kMaxIdBytes));
    }
    if (auto op = data.find("op"); op != data.end()) {
        if (!op->is_string() || (*op != "upsert" && *op != "delete")) {
            return InvalidArgumentError(
                fmt::format("{}: op: expected \"upsert\" or \"delete\", got {}", name, op->dump()));
        }
        change.op = *op == "delete" ? DocumentChange::Op::kDelete : DocumentChange::Op::kUpsert;
    } else if (EndsWith(event.type, ".deleted") || EndsWith(event.type, ".delete")) {
        change.op = DocumentChange::Op::kDelete;
    }
    if (change.op == DocumentChange::Op::kDelete) return change;

    if (auto text = data.find("text"); text != data.end() && !text->is_null()) {
        if (!text->is_string()) {
            return InvalidArgumentError(
                fmt::format("{}: text: expected a string, got {}", name, TypeName(*text)));
        }
        change.text = text->get<std::string>();
    }
    if (auto metadata = data.find("metadata"); metadata != data.end() && !metadata->is_null()) {
        if (!metadata->is_object()) {
            return InvalidArgumentError(
                fmt::format("{}: metadata: expected an object, got {}", name, TypeName(*metadata)));
        }
        for (const auto& [key, value] : metadata->items()) {
            if (value.is_string()) {
                change.metadata.emplace_back(key, value.get<std::string>());
            } else if (value.is_number() || value.is_boolean()) {
                change.metadata.emplace_back(key, value.dump());
            } else {
                return InvalidArgumentError(
                    fmt::format("{}: metadata.{}: expected a string, number or boolean, got {}",
                                name, key, TypeName(value)));
            }
        }
    }
    return change;
}

}  // namespace eventloom::rag
