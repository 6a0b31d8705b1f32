// JSON Schema -> GBNF: constrains an LLM's output to JSON that matches a schema.
//
// The llama backend hands the GBNF text to llama.cpp's grammar sampler, which masks every token
// that would leave the grammar; ValidateJsonAgainstSchema checks a finished output against the
// same schema (a backend that cannot constrain decoding relies on it alone). Both accept the
// same subset of JSON Schema, listed in docs/llm.md ("JSON Schema support"), and reject anything
// outside it with the same InvalidArgument message, naming the keyword and the JSON pointer
// where it occurs:
//
//   json schema: unsupported keyword 'pattern' at /properties/name
//
// One deliberate departure from JSON Schema keeps the generated text small and predictable:
// `properties` (even `{}`) close an object, as if `additionalProperties` were false. True or a
// schema for `additionalProperties` is supported only on objects without `properties` (a map);
// `{"type": "object"}` with neither keyword allows any members, as JSON Schema says.
// The validator follows it too. Where the two still differ (the grammar leaves numeric bounds
// and `oneOf` exclusivity to the validator; the validator accepts whitespace and member orders
// the grammar never writes) is listed in docs/llm.md.
//
// Thread-safety: both functions are pure; call them from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom::llm {

// Converts JSON Schema text to a GBNF grammar whose start rule is `root`. The grammar accepts
// compact JSON: at most one space or newline wherever JSON allows whitespace inside the value,
// none before or after it. Object members come in the order `properties` declares them;
// optional ones may be left out. Returns InvalidArgument for malformed text, keywords outside
// the subset, a `$ref` that does not resolve, and schemas that cannot be generated (`false`, an
// `enum` none of whose values fits the other keywords, `$ref`s that loop without consuming
// input).
[[nodiscard]] Result<std::string> JsonSchemaToGbnf(std::string_view schema_json);

// Checks `value` against `schema` (the subset JsonSchemaToGbnf accepts). OK when it matches;
// otherwise InvalidArgument naming the JSON pointer of the failing value and the keyword, e.g.
//   json schema validation: value at /items/2 fails 'type': expected integer, got string
// or, for a schema outside the subset, the message JsonSchemaToGbnf would return.
[[nodiscard]] Status ValidateJsonAgainstSchema(const nlohmann::json& schema,
                                               const nlohmann::json& value);

}  // namespace eventloom::llm
