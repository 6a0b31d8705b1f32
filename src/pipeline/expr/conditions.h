// Conditions: boolean expressions over an event scope (scope.h), for a route's `when`.
//
//   literals   "str" 'str' 123 1.5 true false null, and lists ["a", "b"]
//   paths      data.triage.category, data.items[0], data["odd key"], event.type
//   operators  ! (highest), then == != < <= > >= in contains matches, then &&, then ||;
//              parentheses group
//   exists(path)
//
// Evaluation never fails: a comparison with a missing path is false (also `!=`), `<` `<=` `>`
// `>=` compare two numbers or two strings and are false for other types, `in` and `contains`
// look for an item in a list, a key in an object or a substring in a string, `matches`
// searches a string with an ECMAScript regular expression (std::regex). A value in a boolean
// place is true unless it is missing, null, false, 0 or empty.
//
// Compile errors are InvalidArgument "at column N: ..." (N is the 1-based byte column in the
// expression). A regular expression written as a literal is compiled with the condition.
//
// Compiled conditions are immutable values: copyable, and safe to evaluate from many threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom::pipeline {

namespace expr_internal {
struct ConditionNode;
}

class Condition {
public:
    static Result<Condition> Compile(std::string_view text);

    bool Evaluate(const nlohmann::json& scope) const;

private:
    std::shared_ptr<const expr_internal::ConditionNode> root_;
};

}  // namespace eventloom::pipeline
