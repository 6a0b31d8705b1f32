// Transform steps (pipeline/expr/transform.h), the redaction patterns under them (redact.h)
// and the text measures of truncate (text.h). Options come from real pipeline text, so errors
// are checked at their line and column.
#include "pipeline/expr/transform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "pipeline/config/pipeline_spec.h"
#include "pipeline/expr/redact.h"
#include "pipeline/expr/text.h"

namespace eventloom::pipeline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// A transform stage's `with:` block, as the loader reads it: the lines of `with_yaml` start
// at line 9 of "p.yaml", indented by six spaces.
Options WithFromYaml(const std::string& with_yaml) {
    std::string yaml =
        "version: 1\nname: p\nstages:\n  - name: t\n    consumes: in\n    uses: transform\n"
        "    emits: out\n    with:\n";
    std::istringstream lines(with_yaml);
    for (std::string line; std::getline(lines, line);) yaml += "      " + line + "\n";
    auto spec = ParsePipeline(yaml, "p.yaml", ".");
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    if (!spec.ok() || spec->stages.empty()) return Options();
    return spec->stages[0].with;
}

Transform Compile(const std::string& with_yaml) {
    std::vector<Diagnostic> diagnostics;
    auto t = CompileTransform(WithFromYaml(with_yaml), &diagnostics);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_TRUE(diagnostics.empty());
    return t.ok() ? std::move(t).value() : Transform();
}

std::vector<Diagnostic> CompileErrors(const std::string& with_yaml) {
    std::vector<Diagnostic> diagnostics;
    auto t = CompileTransform(WithFromYaml(with_yaml), &diagnostics);
    EXPECT_FALSE(t.ok());
    if (!t.ok()) {
        EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    }
    return diagnostics;
}

json Apply(const Transform& t, const json& data) {
    auto out = t.Apply(json{{"data", data}, {"event", {{"id", "e-1"}, {"type", "in"}}}});
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : json("<error>");
}

const json kTicket = {{"subject", "Refund"},
                      {"body", "Please refund order 12"},
                      {"customer", {{"name", "Ada"}, {"email", "ada@example.com"}}},
                      {"items", json::array({"a", "b", "c"})},
                      {"internal", true}};

TEST(Transform, SelectKeepsOnlyTheListedPaths) {
    Transform t = Compile("steps:\n  - select: [subject, customer.name, nope]\n");
    EXPECT_EQ(Apply(t, kTicket), json({{"subject", "Refund"}, {"customer", {{"name", "Ada"}}}}));
}

TEST(Transform, SelectAcceptsASinglePath) {
    Transform t = Compile("steps:\n  - select: subject\n");
    EXPECT_EQ(Apply(t, kTicket), json({{"subject", "Refund"}}));
}

TEST(Transform, DropRemovesPathsAndIndexes) {
    Transform t = Compile("steps:\n  - drop: [internal, customer.email, 'items[1]', nope]\n");
    json want = kTicket;
    want.erase("internal");
    want["customer"].erase("email");
    want["items"] = json::array({"a", "c"});
    EXPECT_EQ(Apply(t, kTicket), want);
}

TEST(Transform, RenameMovesValuesAndSkipsMissingOnes) {
    Transform t =
        Compile("steps:\n  - rename: { subject: title, customer.name: who.name, x: y }\n");
    json out = Apply(t, kTicket);
    EXPECT_FALSE(out.contains("subject"));
    EXPECT_EQ(out["title"], "Refund");
    EXPECT_EQ(out["who"], json({{"name", "Ada"}}));
    EXPECT_FALSE(out["customer"].contains("name"));
    EXPECT_FALSE(out.contains("y"));
}

TEST(Transform, RenameOntoAScalarFailsNamingTheStep) {
    Transform t =
        Compile("steps:\n  - select: [subject, internal]\n  - rename: { subject: internal.x }\n");
    auto out = t.Apply(json{{"data", kTicket}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(out.status().message(), HasSubstr("steps[1].rename: cannot set 'internal.x'"));
}

TEST(Transform, SetRendersTemplatesOverTheDataEditedSoFar) {
    Transform t = Compile(
        "steps:\n"
        "  - rename: { subject: title }\n"
        "  - set:\n"
        "      source: helpdesk\n"
        "      headline: \"{{ data.title | upper }} from {{ data.customer.name }}\"\n"
        "      count: \"{{ data.items | length }}\"\n"
        "      copy: \"{{ data.items }}\"\n"
        "      meta.event: \"{{ event.id }}\"\n"
        "      fixed: 5\n");
    json out = Apply(t, kTicket);
    EXPECT_EQ(out["source"], "helpdesk");
    EXPECT_EQ(out["headline"], "REFUND from Ada");
    EXPECT_EQ(out["count"], 3);
    EXPECT_EQ(out["copy"], json({"a", "b", "c"}));
    EXPECT_EQ(out["meta"], json({{"event", "e-1"}}));
    EXPECT_EQ(out["fixed"], 5);
}

TEST(Transform, SetOnNullDataStartsAnObject) {
    Transform t = Compile("steps:\n  - set: { a: 1 }\n");
    EXPECT_EQ(Apply(t, nullptr), json({{"a", 1}}));
}

TEST(Transform, RedactReplacesPatternsAtTheGivenPathsOnly) {
    Transform t = Compile(
        "steps:\n"
        "  - redact:\n"
        "      paths: [body, notes]\n"
        "      patterns: [email, phone]\n"
        "      replacement: \"***\"\n");
    const json data = {{"body", "mail ada@example.com or call 415-555-0134"},
                       {"notes", json::array({"x@y.org", {{"deep", "+44 20 7946 0958"}}})},
                       {"other", "ada@example.com"}};
    json out = Apply(t, data);
    EXPECT_EQ(out["body"], "mail *** or call ***");
    EXPECT_EQ(out["notes"], json::parse(R"(["***", {"deep": "***"}])"));
    EXPECT_EQ(out["other"], "ada@example.com");
}

TEST(Transform, RedactDefaultsToEveryStringAndEveryPattern) {
    Transform t = Compile("steps:\n  - redact: {}\n");
    const json data = {{"a", "card 4111 1111 1111 1111"},
                       {"b", {{"c", "ip 10.1.2.3"}}},
                       {"n", 4111111111111111},
                       {"d", "nothing here"}};
    json out = Apply(t, data);
    EXPECT_EQ(out["a"], "card [redacted]");
    EXPECT_EQ(out["b"]["c"], "ip [redacted]");
    EXPECT_EQ(out["n"], 4111111111111111);  // numbers are not text
    EXPECT_EQ(out["d"], "nothing here");
}

TEST(Transform, RedactWorksOnAStringData) {
    Transform t = Compile("steps:\n  - redact: { patterns: [email] }\n");
    EXPECT_EQ(Apply(t, "write to a@b.io"), json("write to [redacted]"));
}

TEST(Transform, TruncateByCharsAndByTokens) {
    Transform chars = Compile("steps:\n  - truncate: { path: body, max_chars: 6 }\n");
    EXPECT_EQ(Apply(chars, kTicket)["body"], "Please");
    Transform tokens = Compile("steps:\n  - truncate: { path: body, max_tokens: 3 }\n");
    // "Please" is 2 approximate tokens, " refund" 2: the cut falls inside "refund".
    EXPECT_EQ(Apply(tokens, kTicket)["body"], "Please refu");
}

TEST(Transform, TruncateKeepsNonStringsAndMissingPaths) {
    Transform t = Compile(
        "steps:\n  - truncate: { path: internal, max_chars: 1 }\n"
        "  - truncate: { path: nope, max_chars: 1 }\n");
    EXPECT_EQ(Apply(t, kTicket), kTicket);
}

TEST(Transform, StepsApplyInOrder) {
    Transform t = Compile(
        "steps:\n"
        "  - select: [subject, customer]\n"
        "  - redact: { paths: [customer], patterns: [email] }\n"
        "  - truncate: { path: subject, max_chars: 3 }\n");
    EXPECT_EQ(Apply(t, kTicket),
              json({{"subject", "Ref"}, {"customer", {{"name", "Ada"}, {"email", "[redacted]"}}}}));
}

TEST(Transform, TypeIsTheOutputEventType) {
    EXPECT_EQ(Compile("type: ticket.cleaned\nsteps: []\n").type(), "ticket.cleaned");
    EXPECT_EQ(Compile("steps: []\n").type(), "");
}

TEST(Transform, DataThatIsNotAnObjectFailsNamingTheStep) {
    Transform t = Compile("steps:\n  - redact: {}\n  - select: [a]\n");
    auto out = t.Apply(json{{"data", json::array({1, 2})}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(out.status().message(), HasSubstr("steps[1].select: data is not a JSON object"));
}

TEST(Transform, CompileErrorsAreReportedAtTheirOption) {
    struct Case {
        const char* what;
        std::string with;
        int line;
        int column;
        const char* message;
    };
    // Line 9 is the first line of `with`, and its text starts at column 7.
    const Case cases[] = {
        {"unknown with key", "steps: []\ntypo: 1\n", 10, 13, "typo: unknown key 'typo'"},
        {"missing steps", "type: x\n", 9, 7, "with: missing 'steps'"},
        {"steps not a list", "steps: 3\n", 9, 14, "steps: expected a list of steps"},
        {"type not a string", "type: [a]\nsteps: []\n", 9, 13, "type: expected a string"},
        {"unknown step", "steps:\n  - upcase: [a]\n", 10, 19,
         "steps[0].upcase: unknown step 'upcase'; expected one of select, drop, rename"},
        {"two kinds in one step", "steps:\n  - { select: [a], drop: [b] }\n", 10, 11,
         "steps[0]: expected a mapping with one of select"},
        {"select with an index", "steps:\n  - select: [a, 'items[0]']\n", 10, 23,
         "steps[0].select[1]: path 'items[0]': an array index cannot be used here"},
        {"bad path", "steps:\n  - drop: [a..b]\n", 10, 18, "steps[0].drop[0]: path 'a..b'"},
        {"paths not strings", "steps:\n  - drop: [{a: 1}]\n", 10, 18,
         "steps[0].drop[0]: expected a string, found a mapping"},
        {"rename to a non-string", "steps:\n  - rename: { a: [b] }\n", 10, 24,
         "steps[0].rename.a: expected the new path as a string"},
        {"empty set", "steps:\n  - set: {}\n", 10, 16, "steps[0].set: expected a mapping of paths"},
        {"bad template in set", "steps:\n  - set: { a: \"{{ data.x | nope }}\" }\n", 10, 21,
         "steps[0].set.a: at column 13: unknown filter 'nope'"},
        {"unknown pattern", "steps:\n  - redact: { patterns: [email, ssn] }\n", 10, 39,
         "steps[0].redact.patterns[1]: unknown pattern 'ssn'; expected one of email, phone"},
        {"bad regex", "steps:\n  - redact: { patterns: ['re:(['] }\n", 10, 32,
         "pattern 're:([': invalid regular expression"},
        {"empty regex", "steps:\n  - redact: { patterns: ['re:'] }\n", 10, 32,
         "pattern 're:' has no expression"},
        {"unknown redact key", "steps:\n  - redact: { path: [a] }\n", 10, 27,
         "steps[0].redact.path: unknown key 'path'; expected one of paths, patterns, replacement"},
        {"truncate with both limits",
         "steps:\n  - truncate: { path: a, max_chars: 1, max_tokens: 1 }\n", 10, 21,
         "steps[0].truncate: expected exactly one of max_chars and max_tokens"},
        {"truncate without a limit", "steps:\n  - truncate: { path: a }\n", 10, 21,
         "expected exactly one of max_chars and max_tokens"},
        {"truncate without a path", "steps:\n  - truncate: { max_chars: 1 }\n", 10, 21,
         "steps[0].truncate: missing 'path'"},
        {"negative limit", "steps:\n  - truncate: { path: a, max_chars: -1 }\n", 10, 43,
         "steps[0].truncate.max_chars: expected a whole number from 0 to"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(c.what) + "\n" + c.with);
        std::vector<Diagnostic> found = CompileErrors(c.with);
        ASSERT_EQ(found.size(), 1u) << DiagnosticsStatus(found).ToString();
        EXPECT_EQ(found[0].where.file, "p.yaml");
        EXPECT_EQ(found[0].where.line, c.line) << found[0].ToString();
        EXPECT_EQ(found[0].where.column, c.column) << found[0].ToString();
        EXPECT_THAT(found[0].message, HasSubstr(c.message));
    }
}

TEST(Transform, ReportsEveryBadStepAtOnce) {
    std::vector<Diagnostic> found = CompileErrors(
        "steps:\n  - select: [a]\n  - nope: 1\n  - truncate: { path: a }\n"
        "  - redact: { patterns: [ssn] }\n");
    ASSERT_EQ(found.size(), 3u) << DiagnosticsStatus(found).ToString();
    EXPECT_EQ(found[0].where.line, 11);
    EXPECT_EQ(found[1].where.line, 12);
    EXPECT_EQ(found[2].where.line, 13);
}

// ---------------------------------------------------------------------------------------------
// Redactor.

std::string Redact(const std::vector<std::string>& patterns, const std::string& text) {
    auto r = Redactor::Compile(patterns, "[x]");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->Redact(text) : std::string("<compile error>");
}

TEST(Redactor, RedactsEmails) {
    EXPECT_EQ(Redact({"email"}, "to ada.l+tag@mail.example.co.uk, now"), "to [x], now");
    EXPECT_EQ(Redact({"email"}, "a@b.io and c@d.org"), "[x] and [x]");
    EXPECT_EQ(Redact({"email"}, "no @ here, user@host"), "no @ here, user@host");
}

TEST(Redactor, RedactsPhoneNumbersInCommonFormats) {
    const char* phones[] = {"+44 20 7946 0958", "(415) 555-0134", "415-555-0134",
                            "415.555.0134",     "030 1234567",    "+14155550134"};
    for (const char* phone : phones) {
        SCOPED_TRACE(phone);
        EXPECT_EQ(Redact({"phone"}, std::string("call ") + phone + " today"), "call [x] today");
    }
}

TEST(Redactor, KeepsNumbersThatAreNotPhoneNumbers) {
    const char* kept[] = {"on 2024-01-15 at", "pi is 3.14159",        "host 10.0.0.1",
                          "amount 1234567",   "order A1234567",       "v1.2.3",
                          "call 555-01",      "version 1.2.3.4.5.6.7"};
    for (const char* text : kept) {
        SCOPED_TRACE(text);
        EXPECT_EQ(Redact({"phone"}, text), text);
    }
}

TEST(Redactor, RedactsCardNumbersThatPassLuhn) {
    const char* cards[] = {"4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
                           "5500 0000 0000 0004", "378282246310005",     "4012888888881881"};
    for (const char* card : cards) {
        SCOPED_TRACE(card);
        EXPECT_EQ(Redact({"credit_card"}, std::string("card ") + card + "."), "card [x].");
    }
}

TEST(Redactor, KeepsLongNumbersThatFailLuhn) {
    const char* kept[] = {"order 4111111111111112", "ref 1234567812345678", "id 9876543210987654",
                          "4111 1111 1111 1112", "id 12345678901234"};
    for (const char* text : kept) {
        SCOPED_TRACE(text);
        EXPECT_EQ(Redact({"credit_card"}, text), text);
    }
    // A Luhn-valid run inside a longer word is not a card number either.
    EXPECT_EQ(Redact({"credit_card"}, "sku X4111111111111111"), "sku X4111111111111111");
}

TEST(Redactor, RedactsIpv4AddressesOnly) {
    EXPECT_EQ(Redact({"ipv4"}, "from 192.168.1.20:8080"), "from [x]:8080");
    EXPECT_EQ(Redact({"ipv4"}, "bad 300.1.1.1"), "bad 300.1.1.1");
    EXPECT_EQ(Redact({"ipv4"}, "version 1.2.3.4.5"), "version 1.2.3.4.5");
}

TEST(Redactor, RedactsIbansThatPassTheirCheck) {
    EXPECT_EQ(Redact({"iban"}, "pay GB82 WEST 1234 5698 7654 32 now"), "pay [x] now");
    EXPECT_EQ(Redact({"iban"}, "pay GB82WEST12345698765432"), "pay [x]");
    EXPECT_EQ(Redact({"iban"}, "pay GB83WEST12345698765432"), "pay GB83WEST12345698765432");
}

TEST(Redactor, CustomRegexAndALiteralReplacement) {
    auto r = Redactor::Compile({"re:ORD-[0-9]+"}, "$1");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->Redact("orders ORD-12 and ORD-345"), "orders $1 and $1");
}

TEST(Redactor, CombinesPatterns) {
    EXPECT_EQ(Redact(Redactor::BuiltinPatterns(),
                     "ada@example.com, +1 415 555 0134, 4111 1111 1111 1111, 8.8.8.8"),
              "[x], [x], [x], [x]");
}

TEST(Redactor, UnknownPatternAndBadRegexAreCompileErrors) {
    auto unknown = Redactor::Compile({"email", "passport"}, "x");
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(unknown.status().message(), HasSubstr("unknown pattern 'passport'"));
    EXPECT_THAT(unknown.status().message(), HasSubstr(Redactor::KnownPatterns()));
    auto bad = Redactor::Compile({"re:a{"}, "x");
    ASSERT_FALSE(bad.ok());
    EXPECT_THAT(bad.status().message(), HasSubstr("pattern 're:a{': invalid regular expression"));
}

TEST(LuhnValid, ChecksTheDigitsOnly) {
    EXPECT_TRUE(LuhnValid("4111 1111 1111 1111"));
    EXPECT_TRUE(LuhnValid("79927398713"));
    EXPECT_FALSE(LuhnValid("79927398710"));
    EXPECT_FALSE(LuhnValid(""));
    EXPECT_FALSE(LuhnValid("no digits"));
}

// ---------------------------------------------------------------------------------------------
// Text measures.

TEST(ApproxTokenCount, CountsWordPiecesDigitsAndPunctuation) {
    EXPECT_EQ(ApproxTokenCount(""), 0u);
    EXPECT_EQ(ApproxTokenCount("   "), 0u);
    EXPECT_EQ(ApproxTokenCount("cat"), 1u);
    EXPECT_EQ(ApproxTokenCount("hello"), 2u);  // 5 letters: ceil(5 / 4)
    EXPECT_EQ(ApproxTokenCount("the cat sat"), 3u);
    EXPECT_EQ(ApproxTokenCount("1234567"), 3u);  // 7 digits: ceil(7 / 3)
    EXPECT_EQ(ApproxTokenCount("a, b!"), 4u);    // a , b !
    EXPECT_EQ(ApproxTokenCount("héllo"), 2u);    // 5 code points
}

TEST(TruncateToTokens, CutsAtPieceBoundariesAndDropsTrailingSpaces) {
    EXPECT_EQ(TruncateToTokens("the cat sat on the mat", 3), "the cat sat");
    EXPECT_EQ(TruncateToTokens("the cat sat", 10), "the cat sat");
    EXPECT_EQ(TruncateToTokens("the cat sat", 0), "");
    EXPECT_EQ(TruncateToTokens("the cat, sat", 2), "the cat");
    EXPECT_EQ(TruncateToTokens("the   cat", 1), "the");
}

TEST(TruncateToTokens, CutsInsideALongPieceByATokensWorthOfCharacters) {
    EXPECT_EQ(TruncateToTokens("internationalization", 2), "internat");
    EXPECT_EQ(TruncateToTokens("call 123456789", 2), "call 123");
}

TEST(TruncateToTokens, NeverSplitsACodePoint) {
    const std::string text = "ééééé ok";  // five two-byte letters: 2 tokens
    EXPECT_EQ(TruncateToTokens(text, 1), "éééé");
    EXPECT_EQ(TruncateToChars("日本語", 2), "日本");
    EXPECT_EQ(TruncateToChars("abc", 5), "abc");
}

}  // namespace
}  // namespace eventloom::pipeline
