// Conditions (pipeline/expr/conditions.h): comparisons, boolean operators, in / contains /
// matches / exists, missing fields, type mismatches, and compile errors at their columns.
#include "pipeline/expr/conditions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace eventloom::pipeline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json Scope() {
    return json{{"data",
                 {{"triage", {{"category", "billing"}, {"urgency", 4}, {"score", 0.75}}},
                  {"tags", json::array({"vip", "refund", 3})},
                  {"customer", {{"name", "Ada Lovelace"}, {"plan", nullptr}}},
                  {"flag", true},
                  {"zero", 0},
                  {"empty", ""},
                  {"odd key", "x"},
                  {"version", "1.10"}}},
                {"event", {{"type", "ticket.created"}, {"subject", ""}}}};
}

struct Case {
    const char* text;
    bool want;
};

void ExpectAll(const std::vector<Case>& cases, const json& scope = Scope()) {
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        auto condition = Condition::Compile(c.text);
        ASSERT_TRUE(condition.ok()) << condition.status().ToString();
        EXPECT_EQ(condition->Evaluate(scope), c.want);
    }
}

TEST(Condition, ComparesStringsAndNumbers) {
    ExpectAll({
        {"data.triage.category == \"billing\"", true},
        {"data.triage.category == 'billing'", true},
        {"data.triage.category != \"billing\"", false},
        {"data.triage.category == \"outage\"", false},
        {"data.triage.urgency == 4", true},
        {"data.triage.urgency == 4.0", true},
        {"data.triage.urgency >= 4", true},
        {"data.triage.urgency > 4", false},
        {"data.triage.urgency < 5", true},
        {"data.triage.urgency <= 3", false},
        {"data.triage.score > 0.5", true},
        {"data.triage.score < -1", false},
        {"\"abc\" < \"abd\"", true},
        {"data.version > \"1.9\"", false},  // strings compare as text
        {"event.type == \"ticket.created\"", true},
        {"data[\"odd key\"] == \"x\"", true},
        {"data.tags[1] == \"refund\"", true},
        {"data.customer.plan == null", true},
        {"data.flag == true", true},
    });
}

TEST(Condition, CombinesWithAndOrNotAndParentheses) {
    ExpectAll({
        {"data.triage.urgency >= 4 && data.triage.category == \"billing\"", true},
        {"data.triage.urgency >= 5 && data.triage.category == \"billing\"", false},
        {"data.triage.urgency >= 5 || data.triage.category == \"billing\"", true},
        {"data.triage.urgency >= 5 || data.triage.category == \"outage\"", false},
        {"!data.flag", false},
        {"!(data.triage.urgency > 5)", true},
        {"!!data.flag", true},
        // && binds tighter than ||.
        {"true || false && false", true},
        {"(true || false) && false", false},
        {"false && true || true", true},
    });
}

TEST(Condition, ValuesInABooleanPlaceAreTruthy) {
    ExpectAll({
        {"data.flag", true},
        {"data.zero", false},
        {"data.empty", false},
        {"data.tags", true},
        {"data.customer", true},
        {"data.customer.plan", false},
        {"data.missing", false},
        {"\"text\"", true},
        {"[]", false},
    });
}

TEST(Condition, InContainsMatchesAndExists) {
    ExpectAll({
        {"data.triage.category in [\"billing\", \"refunds\"]", true},
        {"data.triage.category in [\"outage\"]", false},
        {"data.triage.urgency in [1, 2, 4.0]", true},
        {"\"vip\" in data.tags", true},
        {"3 in data.tags", true},
        {"\"name\" in data.customer", true},
        {"\"Love\" in data.customer.name", true},
        {"data.tags contains \"refund\"", true},
        {"data.tags contains \"none\"", false},
        {"data.customer.name contains \"Ada\"", true},
        {"data.customer contains \"plan\"", true},
        {"data.customer.name matches \"^Ada [A-Z]\"", true},
        {"data.customer.name matches \"^Lovelace\"", false},
        {"event.type matches 'ticket\\\\.'", true},
        {"exists(data.customer.plan)", true},
        {"exists(data.customer.age)", false},
        {"!exists(data.nothing)", true},
        {"exists(data.tags[2])", true},
        {"exists(data.tags[3])", false},
    });
}

TEST(Condition, MissingFieldsMakeComparisonsFalse) {
    ExpectAll({
        {"data.missing == \"x\"", false},
        {"data.missing != \"x\"", false},
        {"data.missing == null", false},
        {"data.missing > 1", false},
        {"data.missing < 1", false},
        {"data.missing in [\"a\"]", false},
        {"data.tags contains data.missing", false},
        {"data.triage.category.deeper == \"x\"", false},
        {"data.tags[10] == \"x\"", false},
        {"!(data.missing == \"x\")", true},
    });
}

TEST(Condition, TypeMismatchesAreFalseNotErrors) {
    ExpectAll({
        {"data.triage.category > 3", false},
        {"data.triage.category < 3", false},
        {"data.triage.category >= 3", false},
        {"data.triage.category <= 3", false},
        {"data.triage.urgency == \"4\"", false},
        {"data.triage.urgency != \"4\"", true},
        {"data.tags > 1", false},
        {"data.triage.urgency contains 4", false},
        {"data.triage.urgency matches \"4\"", false},
        {"data.triage.category in 5", false},
    });
}

TEST(Condition, PatternFromTheDataIsUsedAndABadOneIsFalse) {
    json scope = Scope();
    scope["data"]["pattern"] = "^Ada";
    scope["data"]["bad"] = "([";
    ExpectAll({{"data.customer.name matches data.pattern", true},
               {"data.customer.name matches data.bad", false}},
              scope);
}

TEST(Condition, EvaluatesOverAnEmptyScope) {
    ExpectAll({{"data.a == 1", false}, {"!data.a", true}}, json::object());
    ExpectAll({{"data.a == 1", false}}, json(nullptr));
}

TEST(Condition, CompileErrorsNameTheirColumn) {
    struct ErrorCase {
        const char* text;
        size_t column;
        const char* message;
    };
    const ErrorCase cases[] = {
        {"", 1, "expected a value, a path, '(' or '!', found the end"},
        {"data.a ==", 10, "expected a value, a path"},
        {"data.a == 1 data.b", 13, "expected an operator or the end, found 'data'"},
        {"data.a = 1", 8, "unexpected character '='"},
        {"(data.a == 1", 13, "expected ')', found the end"},
        {"data.a == \"open", 11, "unterminated string"},
        {"data. == 1", 7, "expected a name after '.'"},
        {"data[x] == 1", 6, "expected an index or a quoted key"},
        {"data.a in [1, 2", 16, "expected ',' or ']', found the end"},
        {"data.a in [1 2]", 14, "expected ',' or ']'"},
        {"data.a matches \"([\"", 16, "invalid regular expression"},
        {"data.a matches 3", 16, "expected a regular expression string"},
        {"exists(1)", 8, "expected a path in exists()"},
        {"exists(data.a", 14, "expected ')'"},
        {"data.a && || data.b", 11, "expected a value, a path"},
        {"data.a == 1 &", 13, "unexpected character '&'"},
        {"in == 1", 1, "expected a value, a path"},
    };
    for (const ErrorCase& c : cases) {
        SCOPED_TRACE(c.text);
        auto condition = Condition::Compile(c.text);
        ASSERT_FALSE(condition.ok());
        EXPECT_EQ(condition.status().code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(condition.status().message(),
                    HasSubstr("at column " + std::to_string(c.column) + ": "));
        EXPECT_THAT(condition.status().message(), HasSubstr(c.message));
    }
}

TEST(Condition, CompiledConditionIsACopyableValue) {
    auto compiled = Condition::Compile("data.triage.urgency >= 4");
    ASSERT_TRUE(compiled.ok());
    Condition copy = *compiled;
    EXPECT_TRUE(copy.Evaluate(Scope()));
    EXPECT_TRUE(compiled->Evaluate(Scope()));
}

}  // namespace
}  // namespace eventloom::pipeline
