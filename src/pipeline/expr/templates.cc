// Template and JsonTemplate (templates.h).
#include "pipeline/expr/templates.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <optional>
#include <utility>

#include "pipeline/expr/expr_lexer.h"
#include "pipeline/expr/scope.h"

namespace eventloom::pipeline {

namespace expr_internal {

enum class FilterKind { kDefault, kUpper, kLower, kTrim, kJson, kTruncate, kJoin, kLength };

struct Filter {
    FilterKind kind;
    nlohmann::json arg;
};

struct TemplatePart {
    bool is_hole = false;
    std::string literal;                  // text part, or the hole's literal value
    std::optional<nlohmann::json> value;  // a hole's literal value
    ScopePath path;                       // a hole's path when it has no literal value
    std::vector<Filter> filters;
};

}  // namespace expr_internal

namespace {

using expr_internal::ErrorAt;
using expr_internal::Filter;
using expr_internal::FilterKind;
using expr_internal::Lexer;
using expr_internal::TemplatePart;
using expr_internal::Token;
using expr_internal::TokenKind;
using nlohmann::json;

struct FilterName {
    std::string_view name;
    FilterKind kind;
    bool takes_arg;
};

constexpr FilterName kFilters[] = {
    {"default", FilterKind::kDefault, true}, {"upper", FilterKind::kUpper, false},
    {"lower", FilterKind::kLower, false},    {"trim", FilterKind::kTrim, false},
    {"json", FilterKind::kJson, false},      {"truncate", FilterKind::kTruncate, true},
    {"join", FilterKind::kJoin, true},       {"length", FilterKind::kLength, false},
};

Result<Filter> ParseFilter(Lexer* lexer) {
    Token name = lexer->Next();
    if (name.kind != TokenKind::kIdent) {
        return ErrorAt(name.offset,
                       "expected a filter name after '|', " + expr_internal::Describe(name));
    }
    const FilterName* known = nullptr;
    for (const FilterName& f : kFilters) {
        if (f.name == name.text) known = &f;
    }
    if (!known) {
        return ErrorAt(name.offset,
                       fmt::format("unknown filter '{}' (known: {})", name.text, KnownFilters()));
    }
    Filter filter{known->kind, nullptr};
    const Token& colon = lexer->Peek();
    const bool has_arg = colon.kind == TokenKind::kPunct && colon.text == ":";
    if (!has_arg) {
        if (known->kind == FilterKind::kJoin) {
            filter.arg = ", ";
            return filter;
        }
        if (known->takes_arg) {
            return ErrorAt(colon.offset,
                           fmt::format("expected ':' and a value after filter '{}'", name.text));
        }
        return filter;
    }
    if (!known->takes_arg) {
        return ErrorAt(colon.offset, fmt::format("filter '{}' takes no value", name.text));
    }
    lexer->Next();
    const size_t arg_offset = lexer->Offset();
    if (!expr_internal::ParseLiteral(lexer, &filter.arg)) {
        return ErrorAt(arg_offset, fmt::format("expected a literal value for filter '{}', {}",
                                               name.text, expr_internal::Describe(lexer->Peek())));
    }
    if (known->kind == FilterKind::kTruncate &&
        (!filter.arg.is_number_integer() || filter.arg.get<int64_t>() < 0)) {
        return ErrorAt(arg_offset, "expected a non-negative whole number for filter 'truncate'");
    }
    if (known->kind == FilterKind::kJoin && !filter.arg.is_string()) {
        return ErrorAt(arg_offset, "expected a string for filter 'join'");
    }
    return filter;
}

// Parses the hole whose "{{" ends at `offset`; on success *end is just past its "}}".
Result<TemplatePart> ParseHole(std::string_view text, size_t open, size_t* end) {
    // A hole never closed is reported where it opens, not at whatever text follows it.
    if (text.find("}}", open + 2) == std::string_view::npos) {
        return ErrorAt(open, "expected '}}' to close '{{'");
    }
    Lexer lexer(text, open + 2);
    TemplatePart part;
    part.is_hole = true;
    Token first = lexer.Next();
    if (first.kind == TokenKind::kError) return ErrorAt(first.offset, first.text);
    if (first.kind == TokenKind::kIdent && first.text != "true" && first.text != "false" &&
        first.text != "null") {
        EVENTLOOM_ASSIGN_OR_RETURN(part.path, expr_internal::ParsePathAfter(first, &lexer));
    } else {
        Lexer literal_lexer(text, first.offset);
        json value;
        if (!expr_internal::ParseLiteral(&literal_lexer, &value)) {
            if (first.kind == TokenKind::kEnd) {
                return ErrorAt(open, "expected '}}' to close '{{'");
            }
            return ErrorAt(first.offset,
                           "expected a path or a literal, " + expr_internal::Describe(first));
        }
        part.value = std::move(value);
    }
    while (true) {
        Token t = lexer.Next();
        if (t.kind == TokenKind::kPunct && t.text == "}}") {
            *end = t.offset + 2;
            return part;
        }
        if (t.kind == TokenKind::kPunct && t.text == "|") {
            EVENTLOOM_ASSIGN_OR_RETURN(Filter f, ParseFilter(&lexer));
            part.filters.push_back(std::move(f));
            continue;
        }
        if (t.kind == TokenKind::kEnd) return ErrorAt(open, "expected '}}' to close '{{'");
        if (t.kind == TokenKind::kError) return ErrorAt(t.offset, t.text);
        return ErrorAt(t.offset, "expected '|' or '}}', " + expr_internal::Describe(t));
    }
}

bool IsEmptyValue(const std::optional<json>& v) {
    if (!v || v->is_null()) return true;
    // json::empty() is false for every string, "" included: ask the string itself.
    if (v->is_string()) return v->get_ref<const std::string&>().empty();
    if (v->is_array() || v->is_object()) return v->empty();
    return false;
}

std::string Text(const std::optional<json>& v) { return v ? ValueText(*v) : std::string(); }

std::string MapAscii(std::string text, int (*f)(int)) {
    for (char& c : text) {
        if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(f(c));
    }
    return text;
}

std::optional<json> ApplyFilter(const Filter& f, std::optional<json> v) {
    switch (f.kind) {
        case FilterKind::kDefault:
            return IsEmptyValue(v) ? f.arg : std::move(v);
        case FilterKind::kUpper:
            return json(MapAscii(Text(v), ::toupper));
        case FilterKind::kLower:
            return json(MapAscii(Text(v), ::tolower));
        case FilterKind::kTrim: {
            std::string s = Text(v);
            const size_t b = s.find_first_not_of(" \t\r\n");
            if (b == std::string::npos) return json("");
            const size_t e = s.find_last_not_of(" \t\r\n");
            return json(s.substr(b, e - b + 1));
        }
        case FilterKind::kJson:
            return json(v ? DumpJson(*v) : std::string("null"));
        case FilterKind::kTruncate: {
            std::string s = Text(v);
            return json(std::string(Utf8Prefix(s, f.arg.get<size_t>())));
        }
        case FilterKind::kJoin: {
            if (!v || !v->is_array()) return json(Text(v));
            std::string out;
            const std::string& sep = f.arg.get_ref<const std::string&>();
            for (size_t i = 0; i < v->size(); ++i) {
                if (i > 0) out += sep;
                out += ValueText((*v)[i]);
            }
            return json(std::move(out));
        }
        case FilterKind::kLength:
            if (v && v->is_string()) return json(Utf8Length(v->get_ref<const std::string&>()));
            if (v && (v->is_array() || v->is_object())) return json(v->size());
            return json(0);
    }
    return v;
}

std::optional<json> Evaluate(const TemplatePart& part, const json& scope) {
    std::optional<json> v;
    if (part.value) {
        v = *part.value;
    } else if (const json* found = expr_internal::Resolve(scope, part.path)) {
        v = *found;
    }
    for (const Filter& f : part.filters) v = ApplyFilter(f, std::move(v));
    return v;
}

}  // namespace

std::string KnownFilters() {
    std::string out;
    for (const FilterName& f : kFilters) {
        if (!out.empty()) out += ", ";
        out += f.name;
    }
    return out;
}

Result<Template> Template::Compile(std::string_view text) {
    size_t offset = 0;
    return CompileWithOffset(text, &offset);
}

Result<Template> Template::CompileWithOffset(std::string_view text, size_t* error_offset) {
    auto parts = std::make_shared<std::vector<TemplatePart>>();
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t open = text.find("{{", pos);
        if (open != pos) {
            TemplatePart literal;
            literal.literal = std::string(text.substr(pos, open - pos));
            if (!parts->empty() && !parts->back().is_hole) {
                parts->back().literal += literal.literal;
            } else {
                parts->push_back(std::move(literal));
            }
            if (open == std::string_view::npos) break;
        }
        size_t end = 0;
        auto hole = ParseHole(text, open, &end);
        if (!hole.ok()) {
            *error_offset = expr_internal::ErrorOffset(hole.status());
            return hole.status();
        }
        parts->push_back(std::move(hole).value());
        pos = end;
    }
    Template t;
    t.parts_ = std::move(parts);
    return t;
}

std::string Template::Render(const json& scope) const {
    std::string out;
    if (!parts_) return out;  // a default-constructed template is empty text
    for (const TemplatePart& part : *parts_) {
        if (part.is_hole) {
            out += Text(Evaluate(part, scope));
        } else {
            out += part.literal;
        }
    }
    return out;
}

json Template::RenderValue(const json& scope) const {
    if (parts_ && parts_->size() == 1 && parts_->front().is_hole) {
        std::optional<json> v = Evaluate(parts_->front(), scope);
        return v ? std::move(*v) : json(nullptr);
    }
    return Render(scope);
}

bool Template::IsLiteral() const {
    if (!parts_) return true;
    for (const TemplatePart& part : *parts_) {
        if (part.is_hole) return false;
    }
    return true;
}

struct JsonTemplate::Node {
    json literal;                  // numbers, booleans, null, and strings without holes
    std::optional<Template> text;  // a string with holes
    std::vector<std::pair<std::string, Node>> members;
    std::vector<Node> items;
    enum Kind { kLiteral, kTemplate, kObject, kArray } kind = kLiteral;
};

namespace {

std::string EscapePointerToken(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

Result<JsonTemplate> JsonTemplate::Compile(const json& value, std::string* error_pointer) {
    std::string bad_pointer;
    std::string bad_message;
    std::function<bool(const json&, const std::string&, Node*)> build =
        [&](const json& v, const std::string& pointer, Node* node) -> bool {
        if (v.is_object()) {
            node->kind = Node::kObject;
            for (const auto& [key, member] : v.items()) {
                node->members.emplace_back(key, Node());
                if (!build(member, pointer + "/" + EscapePointerToken(key),
                           &node->members.back().second)) {
                    return false;
                }
            }
            return true;
        }
        if (v.is_array()) {
            node->kind = Node::kArray;
            for (size_t i = 0; i < v.size(); ++i) {
                node->items.emplace_back();
                if (!build(v[i], pointer + "/" + std::to_string(i), &node->items.back())) {
                    return false;
                }
            }
            return true;
        }
        if (v.is_string()) {
            auto t = Template::Compile(v.get_ref<const std::string&>());
            if (!t.ok()) {
                bad_pointer = pointer;
                bad_message = t.status().message();
                return false;
            }
            if (!t->IsLiteral()) {
                node->kind = Node::kTemplate;
                node->text = std::move(t).value();
                return true;
            }
        }
        node->kind = Node::kLiteral;
        node->literal = v;
        return true;
    };
    auto root = std::make_shared<Node>();
    if (!build(value, "", root.get())) {
        if (error_pointer) *error_pointer = bad_pointer;
        const std::string where = bad_pointer.empty() ? "/" : bad_pointer;
        return InvalidArgumentError(fmt::format("{}: {}", where, bad_message));
    }
    JsonTemplate t;
    t.root_ = std::move(root);
    return t;
}

json JsonTemplate::Render(const json& scope) const {
    std::function<json(const Node&)> render = [&](const Node& node) -> json {
        switch (node.kind) {
            case Node::kLiteral:
                return node.literal;
            case Node::kTemplate:
                return node.text->RenderValue(scope);
            case Node::kObject: {
                json out = json::object();
                for (const auto& [key, member] : node.members) out[key] = render(member);
                return out;
            }
            case Node::kArray: {
                json out = json::array();
                for (const Node& item : node.items) out.push_back(render(item));
                return out;
            }
        }
        return nullptr;
    };
    return root_ ? render(*root_) : json(nullptr);
}

}  // namespace eventloom::pipeline
