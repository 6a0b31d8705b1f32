// Tests of JsonSchemaToGbnf and ValidateJsonAgainstSchema.
//
// Every generated grammar is run through llama.cpp's own grammar engine over a real
// vocabulary (a vocab-only model: no weights), the way the llama backend uses it: a document
// is tokenized and fed token by token; at each step the grammar sampler masks the candidates
// it forbids, and the document's next token must not be among them. A document the grammar
// generates gets through to the end, where end-of-sequence must be allowed; any other document
// hits a masked token (or a masked end) somewhere.

#include "llm/grammar/json_schema_grammar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <llama.h>

#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace eventloom::llm {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Json = nlohmann::json;

// ---- llama.cpp's grammar engine -----------------------------------------------------------

class LlamaGrammar : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        llama_log_set(CollectErrors, nullptr);
        llama_backend_init();
        llama_model_params params = llama_model_default_params();
        params.vocab_only = true;
        model_ = llama_model_load_from_file(EVENTLOOM_LLAMA_SPM_VOCAB, params);
        if (model_ == nullptr) return;
        vocab_ = llama_model_get_vocab(model_);
        for (llama_token token = 0; token < llama_vocab_n_tokens(vocab_); ++token) {
            const std::string piece = Piece(token);
            if (!piece.empty()) piece_tokens_.emplace(piece, token);
        }
    }

    static void TearDownTestSuite() {
        llama_model_free(model_);
        model_ = nullptr;
        vocab_ = nullptr;
        llama_backend_free();
    }

    void SetUp() override {
        ASSERT_NE(vocab_, nullptr)
            << "cannot load " << EVENTLOOM_LLAMA_SPM_VOCAB << ": " << *errors_;
    }

    // The grammar for `schema`; a failed conversion fails the test.
    static std::string Grammar(const std::string& schema) {
        Result<std::string> grammar = JsonSchemaToGbnf(schema);
        EXPECT_TRUE(grammar.ok()) << grammar.status().ToString() << "\nschema: " << schema;
        return grammar.ok() ? *grammar : std::string();
    }

    // Empty when `grammar` lets `document` through and may then end; otherwise where the engine
    // stopped it. A grammar that llama.cpp cannot parse fails the test.
    static std::optional<std::string> Rejection(const std::string& grammar,
                                                const std::string& document) {
        errors_->clear();
        std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> sampler(
            llama_sampler_init_grammar(vocab_, grammar.c_str(), "root"), llama_sampler_free);
        if (sampler == nullptr) {
            ADD_FAILURE() << "llama.cpp rejects the grammar: " << *errors_ << "\n" << grammar;
            return "grammar does not parse";
        }

        std::string fed;
        for (llama_token token : Tokenize(document)) {
            if (!Allowed(sampler.get(), token)) {
                return "token '" + Piece(token) + "' masked after '" + fed + "'";
            }
            llama_sampler_accept(sampler.get(), token);
            fed += Piece(token);
        }
        if (!Allowed(sampler.get(), llama_vocab_eos(vocab_)))
            return "end masked after the document";
        return std::nullopt;
    }

    static void ExpectGenerated(const std::string& grammar, const std::string& document) {
        std::optional<std::string> rejection = Rejection(grammar, document);
        EXPECT_FALSE(rejection.has_value())
            << "document: " << document << "\nrejected: " << rejection.value_or("") << "\n"
            << grammar;
    }

    static void ExpectMasked(const std::string& grammar, const std::string& document) {
        EXPECT_TRUE(Rejection(grammar, document).has_value())
            << "document: " << document << "\nlet through by\n"
            << grammar;
    }

private:
    static void CollectErrors(ggml_log_level level, const char* text, void* /*user_data*/) {
        if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_CONT) *errors_ += text;
    }

    static std::string Piece(llama_token token) {
        char buffer[256];
        const int32_t n = llama_token_to_piece(vocab_, token, buffer, sizeof buffer, 0, false);
        return n > 0 ? std::string(buffer, n) : std::string();
    }

    // The document's tokens, exactly: SentencePiece vocabularies put a space in front of the
    // text, which is taken off the first token again (its remainder re-split greedily into the
    // longest pieces of the vocabulary).
    static std::vector<llama_token> Tokenize(const std::string& document) {
        std::vector<llama_token> tokens(document.size() + 16);
        const int32_t n = llama_tokenize(vocab_, document.data(), document.size(), tokens.data(),
                                         tokens.size(), /*add_special=*/false,
                                         /*parse_special=*/false);
        tokens.resize(std::max(n, 0));

        if (Text(tokens) == " " + document && !tokens.empty()) {
            const std::string rest = Piece(tokens.front()).substr(1);
            tokens.erase(tokens.begin());
            std::vector<llama_token> split = Split(rest);
            tokens.insert(tokens.begin(), split.begin(), split.end());
        }
        EXPECT_EQ(Text(tokens), document) << "tokenization does not round-trip";
        return tokens;
    }

    static std::vector<llama_token> Split(std::string text) {
        std::vector<llama_token> tokens;
        while (!text.empty()) {
            for (size_t length = std::min<size_t>(text.size(), 48); length > 0; --length) {
                auto found = piece_tokens_.find(text.substr(0, length));
                if (found == piece_tokens_.end()) continue;
                tokens.push_back(found->second);
                text.erase(0, length);
                break;
            }
        }
        return tokens;
    }

    static std::string Text(const std::vector<llama_token>& tokens) {
        std::string text;
        for (llama_token token : tokens) text += Piece(token);
        return text;
    }

    // Applies the grammar sampler to every token of the vocabulary, as at a decoding step.
    static bool Allowed(llama_sampler* sampler, llama_token token) {
        std::vector<llama_token_data> data(llama_vocab_n_tokens(vocab_));
        for (size_t i = 0; i < data.size(); ++i) {
            data[i] = {static_cast<llama_token>(i), 0.0f, 0.0f};
        }
        llama_token_data_array candidates{data.data(), data.size(), -1, false};
        llama_sampler_apply(sampler, &candidates);
        for (size_t i = 0; i < candidates.size; ++i) {
            if (candidates.data[i].id == token) return !std::isinf(candidates.data[i].logit);
        }
        return false;
    }

    static inline llama_model* model_ = nullptr;
    static inline const llama_vocab* vocab_ = nullptr;
    static inline std::map<std::string, llama_token> piece_tokens_;
    static inline std::unique_ptr<std::string> errors_ = std::make_unique<std::string>();
};

// ---- Schemas and documents, through the grammar and the validator -------------------------

struct SchemaCase {
    const char* description;
    std::string schema;
    std::vector<std::string> valid;    // generated by the grammar, accepted by the validator
    std::vector<std::string> invalid;  // masked by the grammar, rejected by the validator
};

// A document for the "formats" case.
std::string Formats(const std::string& day, const std::string& at, const std::string& id,
                    const std::string& more = "") {
    return R"({"day":")" + day + R"(","at":")" + at + R"(","id":")" + id + "\"" + more + "}";
}

const std::vector<SchemaCase>& SchemaCases() {
    static const std::vector<SchemaCase> kCases = {
        {"flat object, all required",
         R"({"type": "object", "properties": {"name": {"type": "string"},
             "age": {"type": "integer"}, "active": {"type": "boolean"}},
             "required": ["name", "age", "active"]})",
         {R"({"name":"Ada","age":36,"active":true})",
          R"({ "name": "Ada", "age": -1, "active": false })",
          "{\n\"name\":\"\",\n\"age\":0,\n\"active\":false\n}"},
         {R"({"name":"Ada","age":36})", R"({"name":"Ada","age":"36","active":true})",
          R"({"name":"Ada","age":36.5,"active":true})",
          R"({"name":"Ada","age":36,"active":true,"extra":1})", R"({"name":"Ada","age":36,)",
          R"([])", R"("Ada")"}},
        {"optional properties around a required one",
         R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
             "c": {"type": "null"}}, "required": ["b"]})",
         {R"({"b":"x"})", R"({"a":1,"b":"x"})", R"({"b":"x","c":null})",
          R"({"a":1, "b":"x", "c":null})"},
         {R"({})", R"({"a":1})", R"({"a":1,"c":null})", R"({"b":"x","c":1})",
          R"({"b":"x","d":1})"}},
        {"all properties optional",
         R"({"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}})",
         {R"({})", R"({ })", R"({"x":1})", R"({"y":2})", R"({"x":1,"y":2})"},
         {R"({"x":1,})", R"({"z":1})", R"({,"y":2})", R"({"x":"1"})"}},
        {"nested objects",
         R"({"type": "object", "required": ["user"], "properties": {"user": {"type": "object",
             "required": ["name", "address"], "properties": {"name": {"type": "string"},
             "address": {"type": "object", "required": ["city", "zip"],
             "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}}}}})",
         {R"({"user":{"name":"Ada","address":{"city":"London","zip":"N1 9GU"}}})"},
         {R"({"user":{"name":"Ada","address":{"city":"London"}}})",
          R"({"user":{"name":"Ada","address":{"city":"London","zip":1}}})",
          R"({"user":{"name":"Ada"}})"}},
        {"array with minItems and maxItems",
         R"({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4})",
         {"[1,2]", "[1, 2, 3]", "[1,2,3,4]"},
         {"[]", "[1]", "[1,2,3,4,5]", R"([1,"2"])", "[1,2,]"}},
        {"array without bounds",
         R"({"type": "array", "items": {"type": "string"}})",
         {"[]", "[ ]", R"(["a"])", R"(["a","b","c"])"},
         {"[1]", R"(["a",])"}},
        {"array of objects",
         R"({"type": "array", "maxItems": 2, "items": {"type": "object",
             "properties": {"id": {"type": "integer"}}, "required": ["id"]}})",
         {R"([{"id":1},{"id":2}])", "[]"},
         {R"([{"id":1},{"id":2},{"id":3}])", R"([{}])", R"([{"id":"1"}])"}},
        {"array of arrays",
         R"({"type": "array", "maxItems": 3,
             "items": {"type": "array", "items": {"type": "number"}, "minItems": 1}})",
         {"[[1],[2.5,-3]]", "[]"},
         {"[[]]", "[[1],[2],[3],[4]]", R"([["1"]])"}},
        {"string enum",
         R"({"type": "string", "enum": ["red", "green", "blue"]})",
         {R"("red")", R"("blue")"},
         {R"("yellow")", R"("re")", R"("Red")", R"("redd")", "1"}},
        {"enum of mixed values",
         R"({"enum": ["a", 1, null, true, {"k": [1, 2]}]})",
         {R"("a")", "1", "null", "true", R"({"k":[1,2]})"},
         {"2", "false", R"("b")", R"({"k":[1]})"}},
        {"enum filtered by type",
         R"({"type": "integer", "enum": [1, "a", 2.5, 3]})",
         {"1", "3"},
         {R"("a")", "2.5", "2"}},
        {"const members",
         R"({"type": "object", "properties": {"kind": {"const": "event"},
             "version": {"const": 2}}, "required": ["kind", "version"]})",
         {R"({"kind":"event","version":2})"},
         {R"({"kind":"other","version":2})", R"({"kind":"event","version":3})"}},
        {"anyOf",
         R"({"anyOf": [{"type": "string"}, {"type": "integer"},
             {"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"]}]})",
         {R"("s")", "5", R"({"x":true})"},
         {"1.5", "[]", R"({"x":1})", "null"}},
        {"oneOf",
         R"({"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "number"}}]})",
         {"null", "[1.5,-2e3]", "[]"},
         {R"("null")", "[true]", "0"}},
        {"array of types with a string keyword",
         R"({"type": ["string", "null"], "maxLength": 3})",
         {R"("abc")", "null", R"("")"},
         {R"("abcd")", "1", "false"}},
        {"recursive $defs",
         R"({"$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"},
             "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
             "required": ["value"]}}, "$ref": "#/$defs/node"})",
         {R"({"value":1})", R"({"value":1,"children":[]})",
          R"({"value":1,"children":[{"value":2,"children":[{"value":3}]},{"value":4}]})"},
         {R"({"value":1,"children":[{"children":[]}]})",
          R"({"value":1,"children":[{"value":"x"}]})", R"({"children":[]})"}},
        {"recursive definitions through anyOf",
         R"({"definitions": {"list": {"type": "object", "properties": {"head": {"type": "string"},
             "tail": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/list"}]}},
             "required": ["head", "tail"]}}, "$ref": "#/definitions/list"})",
         {R"({"head":"a","tail":null})", R"({"head":"a","tail":{"head":"b","tail":null}})"},
         {R"({"head":"a"})", R"({"head":"a","tail":{"head":"b"}})", R"({"head":"a","tail":"b"})"}},
        {"recursion through the root",
         R"({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#"}]}})",
         {"[]", "[1,[2,[3]],[]]"},
         {R"([1,"a"])", "[[1],[true]]"}},
        {"two $defs sharing one",
         R"({"$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"},
             "y": {"type": "number"}}, "required": ["x", "y"]}},
             "type": "object", "properties": {"from": {"$ref": "#/$defs/point"},
             "to": {"$ref": "#/$defs/point"}}, "required": ["from", "to"]})",
         {R"({"from":{"x":0,"y":0},"to":{"x":1.5,"y":-2}})"},
         {R"({"from":{"x":0,"y":0},"to":{"x":1.5}})"}},
        {"strings with escapes and unicode",
         R"({"type": "string"})",
         {R"("plain")", R"("quote \" backslash \\ slash \/")", R"("tab\tnewline\n\r\b\f")",
          R"("\u00e9\u4E2D")", "\"h\xC3\xA9llo \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80\"",
          R"("")"},
         {"\"a\nb\"", "\"tab\there\"", R"("bad \x escape")", R"("\u12")", R"("unterminated)",
          "'single'"}},
        {"string lengths count characters",
         R"({"type": "string", "minLength": 2, "maxLength": 4})",
         {R"("ab")", R"("abcd")", "\"\xC3\xA9\xE4\xB8\xAD\"", R"("\n\t")"},
         {R"("a")", R"("abcde")", R"("")"}},
        {"numbers",
         R"({"type": "number"})",
         {"0", "-0", "3.14", "-2.5e-3", "1E10", "6.02e+23", "42"},
         {R"("1")", "true"}},
        {"integers",
         R"({"type": "integer"})",
         {"0", "-7", "123456789"},
         {"1.5", R"("1")", "true", "-0.5"}},
        {"integer with a non-negative minimum",
         R"({"type": "integer", "minimum": 0})",
         {"0", "5"},
         {"-1"}},
        {"booleans", R"({"type": "boolean"})", {"true", "false"}, {R"("true")", "1", "null"}},
        {"null", R"({"type": "null"})", {"null"}, {R"("null")", "0", "{}"}},
        {"empty schema is any value",
         R"({})",
         {R"({"a":[1,{"b":null}],"c":"d"})", "[]", R"("x")", "1.5e3", "true", "null", "{}"},
         {}},
        {"true schema is any value", R"(true)", {R"([{"x":[]}, -1])"}, {}},
        {"additionalProperties false",
         R"({"type": "object", "properties": {"a": {"type": "integer"}},
             "additionalProperties": false})",
         {R"({"a":1})", "{}"},
         {R"({"a":1,"b":2})", R"({"b":2})"}},
        {"map of integers",
         R"({"type": "object", "additionalProperties": {"type": "integer"}})",
         {"{}", R"({"x":1,"y":-2})"},
         {R"({"x":"1"})", R"({"x":1,})"}},
        {"object without properties is any object",
         R"({"type": "object"})",
         {"{}", R"({"a":[1],"b":{"c":null}})"},
         {"[]", "1"}},
        {"empty properties allow no members",
         R"({"type": "object", "properties": {}})",
         {"{}"},
         {R"({"a":1})"}},
        {"type implied by keywords",
         R"({"properties": {"a": {"type": "integer"}}, "required": ["a"]})",
         {R"({"a":1})"},
         {"1", R"({"a":1,"b":2})"}},
        {"optional property with schema false",
         R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": false}})",
         {R"({"a":1})", "{}"},
         {R"({"b":1})", R"({"a":1,"b":2})"}},
        {"items false", R"({"type": "array", "items": false})", {"[]"}, {"[1]"}},
        {"formats",
         R"({"type": "object", "properties": {"day": {"type": "string", "format": "date"},
             "at": {"type": "string", "format": "date-time"},
             "id": {"type": "string", "format": "uuid"},
             "t": {"type": "string", "format": "time"}}, "required": ["day", "at", "id"]})",
         {Formats("2024-02-29", "2024-02-29T13:45:00Z", "123e4567-e89b-12d3-a456-426614174000"),
          Formats("1999-12-31", "2024-02-29t13:45:00.123+02:00",
                  "123E4567-E89B-12D3-A456-426614174000", R"(,"t":"23:59:59z")")},
         {Formats("2024-13-01", "2024-02-29T13:45:00Z", "123e4567-e89b-12d3-a456-426614174000"),
          Formats("2024-02-29", "2024-02-29 13:45:00Z", "123e4567-e89b-12d3-a456-426614174000"),
          Formats("2024-02-29", "2024-02-29T13:45:00Z", "123e4567e89b12d3a456426614174000"),
          Formats("2024-02-29", "2024-02-29T24:00:00Z", "123e4567-e89b-12d3-a456-426614174000"),
          Formats("2024-02-29", "2024-02-29T13:45:00Z", "123e4567-e89b-12d3-a456-426614174000",
                  R"(,"t":"12:00")")}},
        {"property names that are not rule names",
         R"({"type": "object", "properties": {"first name": {"type": "string"},
             "first-name": {"type": "integer"}, "value": {"type": "boolean"},
             "root": {"type": "null"}, "\ud83d\ude00": {"const": 1}, "": {"type": "string"},
             "a\"b\\c": {"type": "array", "items": {"type": "integer"}},
             "2nd": {"type": "object", "properties": {"3": {"type": "integer"}}}},
             "required": ["first name", "first-name", "value", "root", "\ud83d\ude00", "",
                          "a\"b\\c", "2nd"]})",
         {"{\"first name\":\"a\",\"first-name\":1,\"value\":true,\"root\":null,"
          "\"\xF0\x9F\x98\x80\":1,\"\":\"x\",\"a\\\"b\\\\c\":[1],\"2nd\":{\"3\":3}}"},
         {"{\"first name\":\"a\",\"first-name\":1,\"value\":true,\"root\":null,"
          "\"\xF0\x9F\x98\x80\":1,\"\":\"x\",\"ab\\\\c\":[1],\"2nd\":{}}",
          "{\"first name\":\"a\",\"first-name\":1,\"value\":true,\"root\":null,"
          "\"\xF0\x9F\x98\x80\":1,\"\":\"x\",\"a\\\"b\\\\c\":[1],\"2nd\":{\"3\":\"x\"}}"}},
    };
    return kCases;
}

TEST_F(LlamaGrammar, ValidDocumentsAreGeneratedAndInvalidOnesMasked) {
    for (const SchemaCase& schema_case : SchemaCases()) {
        SCOPED_TRACE(schema_case.description);
        const std::string grammar = Grammar(schema_case.schema);
        for (const std::string& document : schema_case.valid) ExpectGenerated(grammar, document);
        for (const std::string& document : schema_case.invalid) ExpectMasked(grammar, document);
    }
}

TEST(ValidateJsonAgainstSchema, AgreesWithTheGrammarOnEverySchemaCase) {
    for (const SchemaCase& schema_case : SchemaCases()) {
        SCOPED_TRACE(schema_case.description);
        const Json schema = Json::parse(schema_case.schema);
        for (const std::string& document : schema_case.valid) {
            Status status = ValidateJsonAgainstSchema(schema, Json::parse(document));
            EXPECT_TRUE(status.ok()) << document << ": " << status.ToString();
        }
        for (const std::string& document : schema_case.invalid) {
            const Json value = Json::parse(document, nullptr, /*allow_exceptions=*/false);
            if (value.is_discarded()) continue;  // not JSON at all: nothing to validate
            Status status = ValidateJsonAgainstSchema(schema, value);
            EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << document;
            EXPECT_THAT(status.message(), StartsWith("json schema validation: value at /"));
        }
    }
}

// ---- What the grammar generates beyond the validator's view -------------------------------

TEST_F(LlamaGrammar, WhitespaceIsAtMostOneSpaceOrNewline) {
    const std::string grammar =
        Grammar(R"({"type": "object", "properties": {"a": {"type": "array"}}})");
    ExpectGenerated(grammar, R"({ "a" : [ 1 , 2 ] })");
    ExpectGenerated(grammar, "{\n\"a\":\n[\n1,\n2\n]\n}");
    ExpectMasked(grammar, R"({  "a":[]})");
    ExpectMasked(grammar, R"({"a":[1,  2]})");
    ExpectMasked(grammar, "{\t\"a\":[]}");
    ExpectMasked(grammar, "{\r\n\"a\":[]}");
    ExpectMasked(grammar, "{\n  \"a\":[]}");
}

TEST_F(LlamaGrammar, NothingComesBeforeOrAfterTheValue) {
    const std::string grammar = Grammar(R"({"type": "integer"})");
    ExpectMasked(grammar, " 1");
    ExpectMasked(grammar, "1 ");
    ExpectMasked(grammar, "1\n");
    ExpectMasked(grammar, "1 2");
}

TEST_F(LlamaGrammar, MembersComeInDeclaredOrder) {
    const std::string grammar = Grammar(
        R"({"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}},
            "required": ["a", "b"]})");
    ExpectGenerated(grammar, R"({"b":"x","a":1})");
    ExpectMasked(grammar, R"({"a":1,"b":"x"})");
}

TEST_F(LlamaGrammar, RepeatedMemberIsMasked) {
    const std::string grammar =
        Grammar(R"({"type": "object", "properties": {"a": {"type": "integer"}}})");
    ExpectMasked(grammar, R"({"a":1,"a":2})");
}

TEST_F(LlamaGrammar, IntegersHaveNoFractionOrExponent) {
    const std::string grammar = Grammar(R"({"type": "integer"})");
    ExpectMasked(grammar, "1.0");
    ExpectMasked(grammar, "1e3");
}

TEST_F(LlamaGrammar, MalformedNumbersAreMasked) {
    const std::string grammar = Grammar(R"({"type": "number"})");
    for (const char* number : {"01", "1.", ".5", "+1", "1e", "--1", "NaN", "0x10", "1.5.2"}) {
        ExpectMasked(grammar, number);
    }
}

TEST_F(LlamaGrammar, NumbersHaveBoundedDigits) {
    const std::string grammar = Grammar(R"({"type": "number"})");
    ExpectGenerated(grammar, "1234567890123456789");  // 19 digits: any int64
    ExpectMasked(grammar, "12345678901234567890");
    ExpectGenerated(grammar, "0.12345678901234567890");
    ExpectMasked(grammar, "0.123456789012345678901");
    ExpectMasked(grammar, "1e1234");
}

TEST_F(LlamaGrammar, NegativeSignIsMaskedUnderANonNegativeMinimum) {
    const std::string grammar = Grammar(R"({"type": "number", "minimum": 0})");
    ExpectGenerated(grammar, "0.5");
    ExpectMasked(grammar, "-0.5");
}

TEST_F(LlamaGrammar, CloseIntegerBoundsAreEnforcedByTheGrammar) {
    const std::string grammar = Grammar(R"({"type": "integer", "minimum": 1, "maximum": 12})");
    for (const char* n : {"1", "5", "10", "12"}) ExpectGenerated(grammar, n);
    for (const char* n : {"0", "13", "55", "-1", "01"}) ExpectMasked(grammar, n);
    const std::string exclusive =
        Grammar(R"({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3})");
    ExpectGenerated(exclusive, "1");
    ExpectGenerated(exclusive, "2");
    ExpectMasked(exclusive, "3");
}

TEST_F(LlamaGrammar, WideIntegerBoundsAreLeftToTheValidator) {
    // Documented: bounds 100 or more apart (and number bounds) are checked by the validator.
    const std::string grammar = Grammar(R"({"type": "integer", "minimum": 1, "maximum": 1000})");
    ExpectGenerated(grammar, "1001");
    EXPECT_FALSE(
        ValidateJsonAgainstSchema(
            Json::parse(R"({"type": "integer", "minimum": 1, "maximum": 1000})"), Json(1001))
            .ok());
}

TEST_F(LlamaGrammar, EnumObjectsAreGeneratedCompactOnly) {
    const std::string grammar = Grammar(R"({"enum": [{"a": 1, "b": [true]}]})");
    ExpectGenerated(grammar, R"({"a":1,"b":[true]})");
    ExpectMasked(grammar, R"({"a": 1, "b": [true]})");
}

TEST_F(LlamaGrammar, LongMaxLengthIsLeftOpen) {
    const std::string grammar = Grammar(R"({"type": "string", "maxLength": 100000})");
    ExpectGenerated(grammar, "\"" + std::string(50, 'x') + "\"");
}

TEST_F(LlamaGrammar, LargeBoundedArrayGrammarParses) {
    const std::string grammar =
        Grammar(R"({"type": "array", "items": {"type": "integer"}, "minItems": 3,
                    "maxItems": 1000})");
    ExpectGenerated(grammar, "[1,2,3]");
    ExpectMasked(grammar, "[1,2]");
}

// ---- The grammar text ---------------------------------------------------------------------

// The rule names a grammar defines, in order.
std::vector<std::string> RuleNames(const std::string& grammar) {
    std::vector<std::string> names;
    const std::regex definition(R"(^(\S+) ::= )");
    std::smatch match;
    size_t start = 0;
    while (start < grammar.size()) {
        const size_t end = grammar.find('\n', start);
        const std::string line = grammar.substr(start, end - start);
        if (std::regex_search(line, match, definition)) names.push_back(match[1]);
        start = end == std::string::npos ? grammar.size() : end + 1;
    }
    return names;
}

TEST(JsonSchemaToGbnf, FirstRuleIsRoot) {
    Result<std::string> grammar = JsonSchemaToGbnf(R"({"type": "string"})");
    ASSERT_TRUE(grammar.ok()) << grammar.status().ToString();
    EXPECT_THAT(*grammar, StartsWith("root ::= "));
}

TEST(JsonSchemaToGbnf, RuleNamesAreUniqueIdentifiers) {
    Result<std::string> grammar = JsonSchemaToGbnf(R"({"type": "object", "properties": {
        "a b": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "a-b": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "value": {"type": "object", "properties": {"string": {"type": "array"}}},
        "%%": {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "null"}}]},
        "\u00e9t\u00e9": {"type": "string", "minLength": 1},
        "x/y~z": {"type": "string", "minLength": 2}}})");
    ASSERT_TRUE(grammar.ok()) << grammar.status().ToString();
    const std::vector<std::string> names = RuleNames(*grammar);
    std::set<std::string> unique;
    for (const std::string& name : names) {
        EXPECT_TRUE(std::regex_match(name, std::regex("[A-Za-z0-9-]+"))) << name;
        EXPECT_TRUE(unique.insert(name).second) << "defined twice: " << name;
    }
}

TEST(JsonSchemaToGbnf, PropertyNamesGiveRuleNames) {
    Result<std::string> grammar = JsonSchemaToGbnf(R"({"type": "object", "properties": {
        "user name": {"type": "object", "properties": {"zip code": {"type": "string",
        "maxLength": 5}}}}})");
    ASSERT_TRUE(grammar.ok()) << grammar.status().ToString();
    EXPECT_THAT(RuleNames(*grammar), ::testing::IsSupersetOf({"user-name", "user-name-zip-code"}));
}

TEST(JsonSchemaToGbnf, SameSchemaGivesSameGrammar) {
    const char* schema = R"({"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                             "anyOf": [{"$ref": "#/$defs/n"}, {"type": "string"}]})";
    Result<std::string> first = JsonSchemaToGbnf(schema);
    Result<std::string> second = JsonSchemaToGbnf(schema);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(*first, *second);
}

TEST(JsonSchemaToGbnf, AnnotationsAreIgnored) {
    Result<std::string> annotated = JsonSchemaToGbnf(R"({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:example:a",
        "title": "A", "description": "an a", "$comment": "note", "default": 1,
        "examples": [1, 2], "type": "integer"})");
    Result<std::string> plain = JsonSchemaToGbnf(R"({"type": "integer"})");
    ASSERT_TRUE(annotated.ok()) << annotated.status().ToString();
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(*annotated, *plain);
}

TEST(JsonSchemaToGbnf, OnlyUsedFixedRulesAreEmitted) {
    Result<std::string> grammar = JsonSchemaToGbnf(R"({"type": "boolean"})");
    ASSERT_TRUE(grammar.ok()) << grammar.status().ToString();
    EXPECT_EQ(*grammar, "root ::= boolean\nboolean ::= \"true\" | \"false\"\n");
}

// ---- Schemas outside the subset -----------------------------------------------------------

struct ErrorCase {
    const char* description;
    std::string schema;
    std::string message;  // the whole message, or its start when it ends with "..."
};

const std::vector<ErrorCase>& ErrorCases() {
    static const std::vector<ErrorCase> kCases = {
        {"pattern", R"({"type": "object", "properties": {"name": {"type": "string",
             "pattern": "^a"}}})",
         "json schema: unsupported keyword 'pattern' at /properties/name"},
        {"unknown keyword at the root", R"({"type": "integer", "multipleOf": 2})",
         "json schema: unsupported keyword 'multipleOf' at /"},
        {"keyword in $defs", R"({"$defs": {"a": {"not": {}}}, "type": "null"})",
         "json schema: unsupported keyword 'not' at /$defs/a"},
        {"pointer escaping", R"({"properties": {"a/b~c": {"allOf": []}}})",
         "json schema: unsupported keyword 'allOf' at /properties/a~1b~0c"},
        {"keyword inside items and anyOf",
         R"({"type": "array", "items": {"anyOf": [{"type": "string"}, {"uniqueItems": true}]}})",
         "json schema: unsupported keyword 'uniqueItems' at /items/anyOf/1"},
        {"malformed text", R"({"type": )", "json schema: malformed schema text: ..."},
        {"empty text", "", "json schema: malformed schema text: ..."},
        {"number too large", R"({"type": "number", "minimum": 1e400})",
         "json schema: malformed schema text: number overflow parsing '1e400'"},
        {"nesting too deep", std::string(200, '[') + std::string(200, ']'),
         "json schema: malformed schema text: nested deeper than 128 levels"},
        {"schema of the wrong kind", R"({"properties": {"a": 5}})",
         "json schema: schema at /properties/a must be an object or a boolean, got integer"},
        {"root of the wrong kind", R"([{"type": "string"}])",
         "json schema: schema at / must be an object or a boolean, got array"},
        {"unresolved $ref", R"({"properties": {"a": {"$ref": "#/$defs/missing"}}})",
         "json schema: keyword '$ref' at /properties/a: '#/$defs/missing' does not resolve"},
        {"unresolved $ref in unused $defs",
         R"({"$defs": {"a": {"items": {"$ref": "#/definitions/b"}}}, "type": "null"})",
         "json schema: keyword '$ref' at /$defs/a/items: '#/definitions/b' does not resolve"},
        {"remote $ref", R"({"$ref": "other.json#/$defs/a"})",
         "json schema: unsupported value 'other.json#/$defs/a' of keyword '$ref' at / "
         "(supported: '#', '#/$defs/...', '#/definitions/...')"},
        {"$ref with siblings", R"({"$defs": {"a": {}}, "$ref": "#/$defs/a", "type": "object"})",
         "json schema: unsupported keyword 'type' at / (only annotations may stand next to "
         "'$ref')"},
        {"anyOf with siblings", R"({"type": "object", "anyOf": [{"required": []}]})",
         "json schema: unsupported keyword 'type' at / (only annotations may stand next to "
         "'anyOf')"},
        {"oneOf not an array", R"({"oneOf": {"type": "null"}})",
         "json schema: keyword 'oneOf' at /: must be a non-empty array of schemas"},
        {"additionalProperties true with properties",
         R"({"properties": {"o": {"type": "object", "properties": {"a": {}},
             "additionalProperties": true}}})",
         "json schema: unsupported keyword 'additionalProperties' at /properties/o (true or a "
         "schema only on objects without 'properties')"},
        {"additionalProperties schema with properties",
         R"({"properties": {"a": {}}, "additionalProperties": {"type": "string"}})",
         "json schema: unsupported keyword 'additionalProperties' at / (true or a schema only "
         "on objects without 'properties')"},
        {"unsupported format", R"({"properties": {"mail": {"type": "string",
             "format": "email"}}})",
         "json schema: unsupported value 'email' of keyword 'format' at /properties/mail "
         "(supported: date, time, date-time, uuid)"},
        {"tuple items", R"({"type": "array", "items": [{"type": "string"}]})",
         "json schema: unsupported keyword 'items' at / (tuple form)"},
        {"unknown type", R"({"type": "str"})",
         "json schema: keyword 'type' at /: \"str\" is not a JSON Schema type"},
        {"type listed twice", R"({"type": ["string", "string"]})",
         "json schema: keyword 'type' at /: \"string\" is listed twice"},
        {"keyword for another type", R"({"type": "string", "minItems": 1})",
         "json schema: keyword 'minItems' at /: does not apply to type \"string\""},
        {"negative count", R"({"type": "array", "minItems": -1})",
         "json schema: keyword 'minItems' at /: must be a non-negative integer"},
        {"fractional count", R"({"type": "string", "maxLength": 1.5})",
         "json schema: keyword 'maxLength' at /: must be a non-negative integer"},
        {"min above max", R"({"type": "array", "minItems": 3, "maxItems": 2})",
         "json schema: keyword 'minItems' at /: is greater than 'maxItems'"},
        {"bound not a number", R"({"type": "number", "minimum": "0"})",
         "json schema: keyword 'minimum' at /: must be a number"},
        {"required not declared",
         R"({"type": "object", "properties": {"a": {}}, "required": ["a", "b"]})",
         "json schema: keyword 'required' at /: names \"b\", which 'properties' lacks"},
        {"required not an array", R"({"type": "object", "required": "a"})",
         "json schema: keyword 'required' at /: must be an array of property names"},
        {"empty enum", R"({"enum": []})",
         "json schema: keyword 'enum' at /: must be a non-empty array"},
        {"$defs not an object", R"({"$defs": [], "type": "null"})",
         "json schema: keyword '$defs' at /: must be an object of schemas"},
    };
    return kCases;
}

// Cases that only the generator rejects: the validator can check values against them.
const std::vector<ErrorCase>& GenerationErrorCases() {
    static const std::vector<ErrorCase> kCases = {
        {"false root", "false", "json schema: schema at / is false: no value can be generated"},
        {"required property false",
         R"({"type": "object", "properties": {"a": false}, "required": ["a"]})",
         "json schema: schema at /properties/a is false: no value can be generated"},
        {"every alternative false", R"({"anyOf": [false, false]})",
         "json schema: every alternative at /anyOf is false: no value can be generated"},
        {"enum against type", R"({"type": "string", "enum": [1, 2]})",
         "json schema: keyword 'enum' at /: no value fits the schema's other keywords"},
        {"const against bound", R"({"type": "integer", "minimum": 5, "const": 1})",
         "json schema: keyword 'const' at /: no value fits the schema's other keywords"},
        {"items false with minItems", R"({"type": "array", "items": false, "minItems": 1})",
         "json schema: keyword 'minItems' at /: no item can be generated"},
        {"minItems too large", R"({"type": "array", "minItems": 5000})",
         "json schema: keyword 'minItems' at /: 5000 is more than the grammar supports (1000)"},
        {"minLength too large", R"({"type": "string", "minLength": 1001})",
         "json schema: keyword 'minLength' at /: 1001 is more than the grammar supports "
         "(1000)"},
        {"left recursion through anyOf",
         R"({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}},
             "$ref": "#/$defs/a"})",
         "json schema: keyword '$ref' at /$defs/a/anyOf/0: references loop without consuming "
         "input"},
        {"root referencing itself", R"({"$ref": "#"})",
         "json schema: keyword '$ref' at /: references loop without consuming input"},
        {"left recursion through two $defs",
         R"({"$defs": {"a": {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/b"}},
             {"$ref": "#/$defs/b"}]}, "b": {"anyOf": [{"$ref": "#/$defs/a"},
             {"type": "string"}]}}, "$ref": "#/$defs/a"})",
         "json schema: keyword '$ref' at /$defs/b/anyOf/0: references loop without consuming "
         "input"},
    };
    return kCases;
}

void ExpectMessage(const Status& status, const std::string& expected) {
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    if (expected.ends_with("...")) {
        EXPECT_THAT(status.message(), StartsWith(expected.substr(0, expected.size() - 3)));
    } else {
        EXPECT_EQ(status.message(), expected);
    }
}

TEST(JsonSchemaToGbnf, SchemaOutsideTheSubsetNamesKeywordAndPointer) {
    for (const ErrorCase& error_case : ErrorCases()) {
        SCOPED_TRACE(error_case.description);
        ExpectMessage(JsonSchemaToGbnf(error_case.schema).status(), error_case.message);
    }
}

TEST(JsonSchemaToGbnf, SchemaThatCannotBeGeneratedIsRejected) {
    for (const ErrorCase& error_case : GenerationErrorCases()) {
        SCOPED_TRACE(error_case.description);
        ExpectMessage(JsonSchemaToGbnf(error_case.schema).status(), error_case.message);
    }
}

TEST(ValidateJsonAgainstSchema, SchemaOutsideTheSubsetGivesTheSameError) {
    for (const ErrorCase& error_case : ErrorCases()) {
        const Json schema = Json::parse(error_case.schema, nullptr, /*allow_exceptions=*/false);
        if (schema.is_discarded() || error_case.message.ends_with("deeper than 128 levels")) {
            continue;  // text errors belong to JsonSchemaToGbnf alone
        }
        SCOPED_TRACE(error_case.description);
        ExpectMessage(ValidateJsonAgainstSchema(schema, Json(nullptr)), error_case.message);
    }
}

TEST(JsonSchemaToGbnf, MalformedTextNamesLineAndColumn) {
    Status status = JsonSchemaToGbnf("{\n  \"type\": \"string\",\n}").status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("line 3, column 1"));
}

// ---- The validator ------------------------------------------------------------------------

Status Validate(const char* schema, const char* value) {
    return ValidateJsonAgainstSchema(Json::parse(schema), Json::parse(value));
}

struct ValidationCase {
    const char* schema;
    const char* value;
    const char* message;  // empty: the value matches
};

TEST(ValidateJsonAgainstSchema, FailureNamesPointerAndKeyword) {
    const ValidationCase kCases[] = {
        {R"({"type": "object", "properties": {"items": {"type": "array",
             "items": {"type": "integer"}}}})",
         R"({"items": [1, 2, "x"]})",
         "json schema validation: value at /items/2 fails 'type': expected integer, got string"},
        {R"({"type": "object", "properties": {"user": {"type": "object",
             "properties": {"name": {"type": "string"}}, "required": ["name"]}}})",
         R"({"user": {}})",
         "json schema validation: value at /user fails 'required': missing property \"name\""},
        {R"({"type": "object", "properties": {"a": {}}})", R"({"a": 1, "extra": 2})",
         "json schema validation: value at /extra fails 'additionalProperties': 'extra' is "
         "not declared in 'properties'"},
        {R"({"type": "object", "additionalProperties": false})", R"({"a/b": 1})",
         "json schema validation: value at /a~1b fails 'additionalProperties': the object "
         "allows no members"},
        {R"({"properties": {"color": {"enum": ["red", "green"]}}})", R"({"color": "yellow"})",
         "json schema validation: value at /color fails 'enum': \"yellow\" is not one of "
         "[\"red\",\"green\"]"},
        {R"({"const": {"a": [1, 2]}})", R"({"a": [2, 1]})",
         "json schema validation: value at / fails 'const': expected {\"a\":[1,2]}"},
        {R"({"type": "integer", "minimum": 0})", "-1",
         "json schema validation: value at / fails 'minimum': -1 is not at least 0"},
        {R"({"type": "number", "maximum": 1.5})", "2",
         "json schema validation: value at / fails 'maximum': 2 is not at most 1.5"},
        {R"({"type": "number", "exclusiveMinimum": 0})", "0",
         "json schema validation: value at / fails 'exclusiveMinimum': 0 is not more than 0"},
        {R"({"type": "number", "exclusiveMaximum": 0})", "0",
         "json schema validation: value at / fails 'exclusiveMaximum': 0 is not less than 0"},
        {R"({"type": "string", "maxLength": 2})", "\"\xC3\xA9\xE4\xB8\xAD!\"",
         "json schema validation: value at / fails 'maxLength': has 3 characters, more than 2"},
        {R"({"type": "string", "minLength": 2})", R"("a")",
         "json schema validation: value at / fails 'minLength': has 1 characters, fewer than 2"},
        {R"({"type": "array", "minItems": 2})", "[1]",
         "json schema validation: value at / fails 'minItems': has 1 items, fewer than 2"},
        {R"({"type": "array", "maxItems": 1})", "[1, 2]",
         "json schema validation: value at / fails 'maxItems': has 2 items, more than 1"},
        {R"({"type": "string", "format": "date"})", R"("2024-02-30T00:00:00Z")",
         "json schema validation: value at / fails 'format': \"2024-02-30T00:00:00Z\" is not "
         "a date"},
        {R"({"anyOf": [{"type": "string"}, {"type": "null"}]})", "1",
         "json schema validation: value at / fails 'anyOf': matches none of the 2 "
         "alternatives"},
        {R"({"oneOf": [{"type": "integer"}, {"type": "number"}]})", "1",
         "json schema validation: value at / fails 'oneOf': matches 2 of the 2 alternatives, "
         "not exactly one"},
        {R"({"minLength": 1})", "5",
         "json schema validation: value at / fails 'type': expected string, got integer (the "
         "type its keywords imply)"},
        {R"({"type": "object", "properties": {"a": false}})", R"({"a": 1})",
         "json schema validation: value at /a fails 'false': the schema allows no value here"},
        {R"({"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"},
             "v": {"type": "integer"}}}}, "$ref": "#/$defs/n"})",
         R"({"next": {"next": {"v": "deep"}}})",
         "json schema validation: value at /next/next/v fails 'type': expected integer, got "
         "string"},
        {R"({"oneOf": [{"type": "integer"}, {"type": "number"}]})", "1.5", ""},
        {R"({"type": "integer"})", "1.0", ""},
        {R"({"type": "string", "format": "date-time"})", R"("2024-02-29T23:59:59.5-05:00")", ""},
        {R"({"type": "string", "format": "uuid"})", R"("00000000-0000-0000-0000-000000000000")",
         ""},
        {R"({"type": "object"})", R"({"anything": [1, {"goes": null}]})", ""},
        {R"({"enum": [{"a": 1, "b": 2}]})", R"({"b": 2, "a": 1})", ""},
        {R"({"enum": [1.0]})", "1", ""},
        {"{}", R"([{"x": 1}, "y", null])", ""},
        {"true", "false", ""},
    };
    for (const ValidationCase& validation_case : kCases) {
        SCOPED_TRACE(std::string(validation_case.schema) + " <- " + validation_case.value);
        Status status = Validate(validation_case.schema, validation_case.value);
        if (std::string(validation_case.message).empty()) {
            EXPECT_TRUE(status.ok()) << status.ToString();
        } else {
            EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
            EXPECT_EQ(status.message(), validation_case.message);
        }
    }
}

TEST(ValidateJsonAgainstSchema, FalseSchemaRejectsEverything) {
    Status status = Validate("false", "null");
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(),
              "json schema validation: value at / fails 'false': the schema allows no value here");
}

TEST(ValidateJsonAgainstSchema, RefLoopWithoutProgressIsASchemaError) {
    Status status = Validate(
        R"({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"},
            {"type": "null"}]}}, "$ref": "#/$defs/a"})",
        "1");
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("references loop without consuming input"));
}

}  // namespace
}  // namespace eventloom::llm
