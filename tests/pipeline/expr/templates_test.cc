// Templates (pipeline/expr/templates.h): paths, literals, every filter, missing values,
// compile errors at their columns, and JsonTemplate keeping the JSON types of its holes.
#include "pipeline/expr/templates.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "eventloom/event.h"
#include "pipeline/expr/scope.h"

namespace eventloom::pipeline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json Scope() {
    return json{
        {"data",
         {{"customer", {{"name", "Ada"}, {"tier", nullptr}}},
          {"subject", "  Refund please  "},
          {"items", json::array({{{"sku", "A-1"}, {"qty", 2}}, {{"sku", "B-2"}, {"qty", 1}}})},
          {"tags", json::array({"billing", "urgent"})},
          {"count", 3},
          {"ratio", 0.5},
          {"ok", true},
          {"empty", ""},
          {"odd key", "odd"},
          {"word", "héllo wörld"}}},
        {"event", {{"id", "e-1"}, {"type", "ticket.created"}}}};
}

std::string Render(const std::string& text, const json& scope = Scope()) {
    auto t = Template::Compile(text);
    EXPECT_TRUE(t.ok()) << text << ": " << t.status().ToString();
    return t.ok() ? t->Render(scope) : std::string("<compile error>");
}

TEST(Template, TextWithoutHolesRendersAsWritten) {
    auto t = Template::Compile("plain text } { }");
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(t->IsLiteral());
    EXPECT_EQ(t->Render(Scope()), "plain text } { }");
}

TEST(Template, EmptyTextRendersEmpty) {
    auto t = Template::Compile("");
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(t->IsLiteral());
    EXPECT_EQ(t->Render(Scope()), "");
}

TEST(Template, RendersPaths) {
    struct Case {
        const char* text;
        const char* want;
    };
    const Case cases[] = {
        {"Hi {{ data.customer.name }}!", "Hi Ada!"},
        {"{{data.customer.name}}", "Ada"},
        {"{{ data.items[1].sku }}", "B-2"},
        {"{{ data[\"odd key\"] }}", "odd"},
        {"{{ data['odd key'] }}", "odd"},
        {"{{ event.id }}/{{ event.type }}", "e-1/ticket.created"},
        {"{{ data.count }}", "3"},
        {"{{ data.ratio }}", "0.5"},
        {"{{ data.ok }}", "true"},
        {"{{ data.tags }}", "[\"billing\",\"urgent\"]"},
        {"{{ data.items[0] }}", "{\"qty\":2,\"sku\":\"A-1\"}"},
        {"a {{ data.count }} b {{ data.customer.name }} c", "a 3 b Ada c"},
        {"line1\n{{ data.count }}\nline3", "line1\n3\nline3"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        EXPECT_EQ(Render(c.text), c.want);
    }
}

TEST(Template, RendersLiterals) {
    EXPECT_EQ(Render("{{ \"text\" }}"), "text");
    EXPECT_EQ(Render("{{ 'single' }}"), "single");
    EXPECT_EQ(Render("{{ 12 }}"), "12");
    EXPECT_EQ(Render("{{ -1.5 }}"), "-1.5");
    EXPECT_EQ(Render("{{ true }}"), "true");
    EXPECT_EQ(Render("{{ null }}"), "");
    EXPECT_EQ(Render("{{ \"a\\\"b\\n\" }}"), "a\"b\n");
}

TEST(Template, LiteralBracesAreWrittenAsAStringHole) {
    EXPECT_EQ(Render("{{ \"{{\" }} name }}"), "{{ name }}");
}

TEST(Template, MissingValuesAndNullRenderEmpty) {
    EXPECT_EQ(Render("[{{ data.nope }}]"), "[]");
    EXPECT_EQ(Render("[{{ data.customer.tier }}]"), "[]");
    EXPECT_EQ(Render("[{{ data.items[9].sku }}]"), "[]");
    EXPECT_EQ(Render("[{{ data.count.deeper }}]"), "[]");
    EXPECT_EQ(Render("[{{ data.tags.key }}]"), "[]");
    EXPECT_EQ(Render("[{{ nothing.at.all }}]"), "[]");
}

TEST(Template, DefaultFilterReplacesMissingNullAndEmpty) {
    EXPECT_EQ(Render("{{ data.nope | default: \"n/a\" }}"), "n/a");
    EXPECT_EQ(Render("{{ data.customer.tier | default: 'basic' }}"), "basic");
    EXPECT_EQ(Render("{{ data.empty | default: \"blank\" }}"), "blank");
    EXPECT_EQ(Render("{{ data.customer.name | default: \"x\" }}"), "Ada");
    EXPECT_EQ(Render("{{ data.nope | default: 0 }}"), "0");
    // 0 and false are values, not empty.
    EXPECT_EQ(Render("{{ data.ok | default: \"x\" }}"), "true");
}

TEST(Template, CaseAndTrimFilters) {
    EXPECT_EQ(Render("{{ data.customer.name | upper }}"), "ADA");
    EXPECT_EQ(Render("{{ data.customer.name | lower }}"), "ada");
    EXPECT_EQ(Render("[{{ data.subject | trim }}]"), "[Refund please]");
    EXPECT_EQ(Render("{{ data.subject | trim | upper }}"), "REFUND PLEASE");
    // Non-ASCII letters are kept as they are, never broken.
    EXPECT_EQ(Render("{{ data.word | upper }}"), "HéLLO WöRLD");
    EXPECT_EQ(Render("[{{ data.nope | upper }}]"), "[]");
}

TEST(Template, JsonFilterGivesJsonText) {
    EXPECT_EQ(Render("{{ data.customer.name | json }}"), "\"Ada\"");
    EXPECT_EQ(Render("{{ data.tags | json }}"), "[\"billing\",\"urgent\"]");
    EXPECT_EQ(Render("{{ data.count | json }}"), "3");
    EXPECT_EQ(Render("{{ data.nope | json }}"), "null");
    EXPECT_EQ(Render("{{ data.customer.tier | json }}"), "null");
}

TEST(Template, TruncateFilterCountsCodePoints) {
    EXPECT_EQ(Render("{{ data.customer.name | truncate: 2 }}"), "Ad");
    EXPECT_EQ(Render("{{ data.customer.name | truncate: 10 }}"), "Ada");
    EXPECT_EQ(Render("{{ data.word | truncate: 2 }}"), "hé");
    EXPECT_EQ(Render("[{{ data.word | truncate: 0 }}]"), "[]");
}

TEST(Template, JoinFilterJoinsItems) {
    EXPECT_EQ(Render("{{ data.tags | join }}"), "billing, urgent");
    EXPECT_EQ(Render("{{ data.tags | join: \" / \" }}"), "billing / urgent");
    EXPECT_EQ(Render("{{ data.tags | join: \"\" }}"), "billingurgent");
    // Not a list: its text.
    EXPECT_EQ(Render("{{ data.customer.name | join: \"-\" }}"), "Ada");
}

TEST(Template, LengthFilterCountsCharactersOrItems) {
    EXPECT_EQ(Render("{{ data.word | length }}"), "11");
    EXPECT_EQ(Render("{{ data.tags | length }}"), "2");
    EXPECT_EQ(Render("{{ data.customer | length }}"), "2");
    EXPECT_EQ(Render("{{ data.count | length }}"), "0");
    EXPECT_EQ(Render("{{ data.nope | length }}"), "0");
}

TEST(Template, RenderValueKeepsTheTypeOfASingleHole) {
    auto whole = Template::Compile("{{ data.count }}");
    ASSERT_TRUE(whole.ok());
    EXPECT_EQ(whole->RenderValue(Scope()), json(3));
    auto list = Template::Compile("{{ data.tags }}");
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list->RenderValue(Scope()), json({"billing", "urgent"}));
    auto missing = Template::Compile("{{ data.nope }}");
    ASSERT_TRUE(missing.ok());
    EXPECT_TRUE(missing->RenderValue(Scope()).is_null());
    auto mixed = Template::Compile("n={{ data.count }}");
    ASSERT_TRUE(mixed.ok());
    EXPECT_EQ(mixed->RenderValue(Scope()), json("n=3"));
}

TEST(Template, CompileErrorsNameTheirColumn) {
    struct Case {
        const char* text;
        size_t column;
        const char* message;
    };
    const Case cases[] = {
        {"Hi {{ data.name", 4, "expected '}}' to close '{{'"},
        {"{{ }}", 4, "expected a path or a literal"},
        {"{{ data.name | uper }}", 16, "unknown filter 'uper' (known: default, upper"},
        {"{{ data.name | }}", 16, "expected a filter name after '|'"},
        {"{{ data.name | default }}", 24, "expected ':' and a value after filter 'default'"},
        {"{{ data.name | upper: 1 }}", 21, "filter 'upper' takes no value"},
        {"{{ data.name | truncate: -1 }}", 26, "non-negative whole number"},
        {"{{ data.name | truncate: \"x\" }}", 26, "non-negative whole number"},
        {"{{ data.name | join: 3 }}", 22, "expected a string for filter 'join'"},
        {"{{ data.name | default: data.x }}", 25, "expected a literal value"},
        {"{{ data. }}", 10, "expected a name after '.'"},
        {"{{ data[x] }}", 9, "expected an index or a quoted key"},
        {"{{ data[0 }}", 11, "expected ']'"},
        {"{{ data.name data.x }}", 14, "expected '|' or '}}'"},
        {"{{ \"open }}", 4, "unterminated string"},
        {"{{ \"bad \\q\" }}", 9, "unknown escape"},
        {"{{ data.name # }}", 14, "unexpected character '#'"},
        {"ok {{ data.a }} then\n{{ data.b | nope }}", 34, "unknown filter 'nope'"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        size_t offset = 0;
        auto t = Template::CompileWithOffset(c.text, &offset);
        ASSERT_FALSE(t.ok());
        EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(t.status().message(),
                    HasSubstr("at column " + std::to_string(c.column) + ": "));
        EXPECT_THAT(t.status().message(), HasSubstr(c.message));
        EXPECT_EQ(offset, c.column - 1);
    }
}

TEST(Template, KnownFiltersListsEveryFilter) {
    EXPECT_EQ(KnownFilters(), "default, upper, lower, trim, json, truncate, join, length");
}

TEST(Template, RendersAgainstARealEventScope) {
    Event e;
    e.id = "evt-9";
    e.type = "ticket.created";
    e.source = "test";
    e.subject = "T-1";
    e.data = R"({"customer":{"name":"Lin"}})";
    e.has_data = true;
    e.extensions.emplace_back("tenant", "acme");
    EXPECT_EQ(
        Render("{{ event.id }} {{ event.subject }} {{ event.tenant }} {{ data.customer.name }}",
               EventScope(e)),
        "evt-9 T-1 acme Lin");
}

TEST(Template, TextDataIsTheScopesDataString) {
    Event e;
    e.id = "evt-1";
    e.data = "not json";
    e.datacontenttype = "text/plain";
    e.has_data = true;
    EXPECT_EQ(Render("[{{ data }}] [{{ data.x }}]", EventScope(e)), "[not json] []");
}

TEST(JsonTemplate, KeepsTypesOfSingleHolesAndRendersText) {
    const json spec = {{"name", "{{ data.customer.name }}"},
                       {"count", "{{ data.count }}"},
                       {"tags", "{{ data.tags }}"},
                       {"missing", "{{ data.nope }}"},
                       {"line", "{{ data.customer.name }} has {{ data.count }}"},
                       {"fixed", 7},
                       {"flag", false},
                       {"none", nullptr},
                       {"text", "no holes"},
                       {"nested", {{"list", json::array({"{{ event.id }}", 1, "x"})}}}};
    auto t = JsonTemplate::Compile(spec);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    const json out = t->Render(Scope());
    EXPECT_EQ(out["name"], "Ada");
    EXPECT_EQ(out["count"], 3);
    EXPECT_EQ(out["tags"], json({"billing", "urgent"}));
    EXPECT_TRUE(out["missing"].is_null());
    EXPECT_EQ(out["line"], "Ada has 3");
    EXPECT_EQ(out["fixed"], 7);
    EXPECT_EQ(out["flag"], false);
    EXPECT_TRUE(out["none"].is_null());
    EXPECT_EQ(out["text"], "no holes");
    EXPECT_EQ(out["nested"]["list"], json({"e-1", 1, "x"}));
}

TEST(JsonTemplate, ObjectKeysAreLiteral) {
    auto t = JsonTemplate::Compile(json{{"{{ data.count }}", "v"}});
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->Render(Scope()), json({{"{{ data.count }}", "v"}}));
}

TEST(JsonTemplate, ErrorNamesThePointerOfTheBadString) {
    std::string pointer;
    auto t =
        JsonTemplate::Compile(json{{"a", json::array({"ok", "{{ data.x | nope }}"})}}, &pointer);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(pointer, "/a/1");
    EXPECT_THAT(t.status().message(), HasSubstr("/a/1: at column 13: unknown filter 'nope'"));
}

TEST(JsonTemplate, ErrorInATopLevelStringNamesTheRoot) {
    std::string pointer = "unchanged";
    auto t = JsonTemplate::Compile(json("{{ oops"), &pointer);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(pointer, "");
    EXPECT_THAT(t.status().message(), HasSubstr("/: at column 1:"));
}

}  // namespace
}  // namespace eventloom::pipeline
