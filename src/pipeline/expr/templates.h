// Templates: text with {{ EXPR }} holes, rendered against an event scope (scope.h).
//
//   EXPR   = VALUE ( '|' FILTER )*
//   VALUE  = a path (`data.customer.name`, `data.items[0]`, `data["odd key"]`, `event.id`)
//          | a literal ("text", 'text', 12, 1.5, true, false, null)
//   FILTER = default: LITERAL   the literal when the value is missing, null or empty
//          | upper | lower | trim
//          | json               the value's JSON text (missing: null)
//          | truncate: N        the first N characters (code points)
//          | join: "SEP"        an array's items' text joined by SEP (default ", ")
//          | length             characters of a string, items of an array or object (else 0)
// A missing path, and null, render as empty text; other non-string values as their JSON text.
// A literal "{{" is written {{ "{{" }}.
//
// Compile errors are InvalidArgument "at column N: ..." with N the 1-based byte column in the
// compiled text (over the whole text, newlines included; CompileWithOffset gives the offset so
// a caller can turn it into line and column). Rendering never fails.
//
// Compiled templates are immutable values: copyable, and safe to render from many threads.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::pipeline {

namespace expr_internal {
struct TemplatePart;
}

class Template {
public:
    static Result<Template> Compile(std::string_view text);
    // The same; on failure *error_offset is the byte offset of the error in `text`.
    static Result<Template> CompileWithOffset(std::string_view text, size_t* error_offset);

    std::string Render(const nlohmann::json& scope) const;
    // A template that is exactly one hole gives the hole's value with its JSON type (missing:
    // null); any other template gives its rendered text as a JSON string.
    nlohmann::json RenderValue(const nlohmann::json& scope) const;
    // True when the template has no holes (Render gives the text as written).
    bool IsLiteral() const;

private:
    std::shared_ptr<const std::vector<expr_internal::TemplatePart>> parts_;
};

// A JSON value whose strings are templates (recursively; object keys are literal). A string
// that is exactly one hole keeps its value's JSON type (Template::RenderValue).
class JsonTemplate {
public:
    // On failure the message starts with the JSON pointer of the bad string ("/a/0: at column
    // 3: ..."), which is also put in *error_pointer when given.
    static Result<JsonTemplate> Compile(const nlohmann::json& value,
                                        std::string* error_pointer = nullptr);

    nlohmann::json Render(const nlohmann::json& scope) const;

private:
    struct Node;
    std::shared_ptr<const Node> root_;
};

// The filter names templates know, for messages: "default, upper, ...".
std::string KnownFilters();

}  // namespace eventloom::pipeline
