// WithChecker (with_checker.h).
#include "pipeline/expr/with_checker.h"

#include <fmt/format.h>

namespace eventloom::pipeline::expr_internal {

namespace {

using nlohmann::json;

std::string_view TypeName(const json& v) {
    if (v.is_string()) return "a string";
    if (v.is_number()) return "a number";
    if (v.is_boolean()) return "a boolean";
    if (v.is_array()) return "a list";
    if (v.is_object()) return "a mapping";
    return "null";
}

}  // namespace

std::string PointerName(const std::string& pointer) {
    if (pointer.empty()) return "with";
    std::string out;
    size_t pos = 1;
    while (pos <= pointer.size()) {
        size_t next = pointer.find('/', pos);
        if (next == std::string::npos) next = pointer.size();
        std::string token = pointer.substr(pos, next - pos);
        // Undo JSON pointer escapes.
        for (size_t i = 0; (i = token.find('~', i)) != std::string::npos; ++i) {
            if (i + 1 < token.size()) token.replace(i, 2, token[i + 1] == '1' ? "/" : "~");
        }
        const bool index =
            !token.empty() && token.find_first_not_of("0123456789") == std::string::npos;
        if (index) {
            out += "[" + token + "]";
        } else {
            if (!out.empty()) out += '.';
            out += token;
        }
        pos = next + 1;
    }
    return out;
}

void WithChecker::Error(const std::string& pointer, std::string_view message) {
    failed_ = true;
    diagnostics_->push_back({with_.LocationOf(pointer),
                             fmt::format("{}{}: {}", prefix_, PointerName(pointer), message)});
}

void WithChecker::CheckKeys(const json& object, const std::string& pointer,
                            std::initializer_list<std::string_view> allowed) {
    if (!object.is_object()) return;
    for (const auto& [key, value] : object.items()) {
        bool known = false;
        for (std::string_view a : allowed) known |= a == key;
        if (known) continue;
        std::string list;
        for (std::string_view a : allowed) {
            if (!list.empty()) list += ", ";
            list += a;
        }
        // TODO(#5): Options keeps the places of values only, so an unknown key is reported at
        // its value (same line, a few columns right of the key).
        Error(pointer + "/" + key, fmt::format("unknown key '{}'; expected one of {}", key, list));
    }
}

const json* WithChecker::String(const json& object, const std::string& pointer, const char* key) {
    auto it = object.find(key);
    if (it == object.end()) return nullptr;
    if (!it->is_string()) {
        Error(pointer + "/" + key, fmt::format("expected a string, found {}", TypeName(*it)));
        return nullptr;
    }
    return &*it;
}

const json* WithChecker::Count(const json& object, const std::string& pointer, const char* key,
                               int64_t max) {
    auto it = object.find(key);
    if (it == object.end()) return nullptr;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > max) {
        Error(pointer + "/" + key,
              fmt::format("expected a whole number from 0 to {}, found {}", max,
                          it->is_number() ? it->dump() : std::string(TypeName(*it))));
        return nullptr;
    }
    return &*it;
}

const json* WithChecker::Number(const json& object, const std::string& pointer, const char* key) {
    auto it = object.find(key);
    if (it == object.end()) return nullptr;
    if (!it->is_number()) {
        Error(pointer + "/" + key, fmt::format("expected a number, found {}", TypeName(*it)));
        return nullptr;
    }
    return &*it;
}

bool WithChecker::Strings(const json& value, const std::string& pointer,
                          std::vector<std::string>* out) {
    if (value.is_string()) {
        out->push_back(value.get<std::string>());
        return true;
    }
    if (!value.is_array()) {
        Error(pointer, fmt::format("expected a list of strings, found {}", TypeName(value)));
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].is_string()) {
            Error(pointer + "/" + std::to_string(i),
                  fmt::format("expected a string, found {}", TypeName(value[i])));
            ok = false;
            continue;
        }
        out->push_back(value[i].get<std::string>());
    }
    return ok;
}

}  // namespace eventloom::pipeline::expr_internal
