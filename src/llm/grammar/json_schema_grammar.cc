// JSON Schema -> GBNF, and a validator for the same subset (see json_schema_grammar.h).
//
// Three passes share the keyword tables below:
//   SchemaChecker   walks the whole schema once and rejects anything outside the subset, so
//                   the other two can rely on its shape;
//   Validator       checks a value against a checked schema;
//   GrammarBuilder  turns a checked schema into GBNF rules.
// Schemas are held as nlohmann::ordered_json so that `properties` keep their declared order.
// nlohmann throws; every call that can throw is wrapped here, and nothing escapes as an
// exception.

#include "llm/grammar/json_schema_grammar.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace eventloom::llm {
namespace {

using Json = nlohmann::ordered_json;

// Schema text nested deeper than this is rejected: checking recurses once per level.
constexpr int kMaxSchemaDepth = 128;
// Values nested deeper than this fail validation, for the same reason.
constexpr int kMaxValueDepth = 256;
// `$ref`s followed without descending into the value; more means they loop.
constexpr int kMaxRefsWithoutProgress = 64;
// llama.cpp expands `x{m,n}` into max(m, n) rules and refuses more than 2000; bounds above this
// are left open in the grammar (the validator still checks them).
constexpr int64_t kMaxGrammarRepetition = 1000;
// Integer ranges narrower than this are spelled out as alternatives.
constexpr int64_t kMaxSpelledIntegers = 100;
constexpr size_t kMaxRuleNameLength = 64;

// ---- Keyword tables -----------------------------------------------------------------------

enum TypeBit : unsigned {
    kNull = 1u << 0,
    kBoolean = 1u << 1,
    kObject = 1u << 2,
    kArray = 1u << 3,
    kString = 1u << 4,
    kNumber = 1u << 5,
    kInteger = 1u << 6,
};
constexpr unsigned kAllTypes = kNull | kBoolean | kObject | kArray | kString | kNumber | kInteger;

struct TypeName {
    std::string_view name;
    unsigned bit;
};
constexpr TypeName kTypeNames[] = {
    {"object", kObject},   {"array", kArray},     {"string", kString}, {"number", kNumber},
    {"integer", kInteger}, {"boolean", kBoolean}, {"null", kNull},
};

// Keywords that constrain values of some types only; without `type`, a schema admits the types
// its keywords imply.
struct TypedKeyword {
    std::string_view name;
    unsigned types;
};
constexpr TypedKeyword kTypedKeywords[] = {
    {"properties", kObject},
    {"required", kObject},
    {"additionalProperties", kObject},
    {"items", kArray},
    {"minItems", kArray},
    {"maxItems", kArray},
    {"minLength", kString},
    {"maxLength", kString},
    {"format", kString},
    {"minimum", kNumber | kInteger},
    {"maximum", kNumber | kInteger},
    {"exclusiveMinimum", kNumber | kInteger},
    {"exclusiveMaximum", kNumber | kInteger},
};

constexpr std::string_view kAnnotations[] = {"title",    "description", "$schema", "$id",
                                             "$comment", "default",     "examples"};
constexpr std::string_view kFormats[] = {"date", "time", "date-time", "uuid"};

template <size_t N>
bool OneOf(std::string_view key, const std::string_view (&names)[N]) {
    return std::find(std::begin(names), std::end(names), key) != std::end(names);
}

bool IsAnnotation(std::string_view key) { return OneOf(key, kAnnotations); }
bool IsDefinitions(std::string_view key) { return key == "$defs" || key == "definitions"; }
bool IsCombinator(std::string_view key) {
    return key == "$ref" || key == "anyOf" || key == "oneOf";
}

const TypedKeyword* FindTypedKeyword(std::string_view key) {
    for (const TypedKeyword& keyword : kTypedKeywords) {
        if (keyword.name == key) return &keyword;
    }
    return nullptr;
}

unsigned TypeBitOf(std::string_view name) {
    for (const TypeName& type : kTypeNames) {
        if (type.name == name) return type.bit;
    }
    return 0;
}

// The types named by a checked `type` value (a string or an array of strings).
unsigned DeclaredTypes(const Json& type) {
    if (type.is_string()) return TypeBitOf(type.get_ref<const std::string&>());
    unsigned types = 0;
    for (const Json& name : type) types |= TypeBitOf(name.get_ref<const std::string&>());
    return types;
}

// The types a checked object schema admits: its `type`, else those its keywords imply, else
// all of them.
unsigned SchemaTypes(const Json& schema) {
    if (auto type = schema.find("type"); type != schema.end()) return DeclaredTypes(*type);
    unsigned implied = 0;
    for (const auto& [key, value] : schema.items()) {
        if (const TypedKeyword* keyword = FindTypedKeyword(key)) implied |= keyword->types;
    }
    return implied != 0 ? implied : kAllTypes;
}

// "integer", "string or null": for messages.
std::string TypesText(unsigned types) {
    if (types & kNumber) types &= ~kInteger;
    std::string text;
    for (const TypeName& type : kTypeNames) {
        if ((types & type.bit) == 0) continue;
        if (!text.empty()) text += " or ";
        text += type.name;
    }
    return text;
}

// True when a schema constrains nothing: `true`, or annotations and definitions only.
bool IsAnySchema(const Json& schema) {
    if (schema.is_boolean()) return schema.get<bool>();
    for (const auto& [key, value] : schema.items()) {
        if (!IsAnnotation(key) && !IsDefinitions(key)) return false;
    }
    return true;
}

// The members an object schema allows. Departing from JSON Schema (see the header),
// `properties` close the object even without `additionalProperties: false`.
enum class ObjectShape {
    kAny,       // any members
    kEmpty,     // no members: `additionalProperties: false`, or `properties: {}` alone
    kDeclared,  // the members `properties` declares, no others
    kMap,       // any names, values matching `additionalProperties`
};

ObjectShape ShapeOf(const Json& schema) {
    auto properties = schema.find("properties");
    if (properties != schema.end() && !properties->empty()) return ObjectShape::kDeclared;
    auto additional = schema.find("additionalProperties");
    if (additional == schema.end()) {
        return properties == schema.end() ? ObjectShape::kAny : ObjectShape::kEmpty;
    }
    if (*additional == Json(false)) return ObjectShape::kEmpty;
    return IsAnySchema(*additional) ? ObjectShape::kAny : ObjectShape::kMap;
}

// ---- Pointers, values and messages --------------------------------------------------------

std::string Child(const std::string& pointer, std::string_view token) {
    std::string out = pointer;
    out.push_back('/');
    for (char c : token) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string Child(const std::string& pointer, size_t index) {
    return pointer + "/" + std::to_string(index);
}

// The root's pointer is "", which messages print as "/".
std::string Where(const std::string& pointer) { return pointer.empty() ? "/" : pointer; }

// Compact JSON text; invalid UTF-8 in a caller's value is replaced rather than thrown on.
std::string Dump(const Json& value) {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string_view ValueTypeName(const Json& value) {
    switch (value.type()) {
        case Json::value_t::null:
            return "null";
        case Json::value_t::boolean:
            return "boolean";
        case Json::value_t::object:
            return "object";
        case Json::value_t::array:
            return "array";
        case Json::value_t::string:
            return "string";
        case Json::value_t::number_integer:
        case Json::value_t::number_unsigned:
            return "integer";
        default:
            return "number";
    }
}

// JSON Schema counts 1.0 as an integer.
bool IsIntegral(const Json& value) {
    if (value.is_number_integer()) return true;
    if (!value.is_number_float()) return false;
    const double number = value.get<double>();
    return std::isfinite(number) && std::floor(number) == number;
}

bool IsNonNegativeIntegral(const Json& value) {
    return IsIntegral(value) && value.get<double>() >= 0;
}

// A checked count keyword (`minItems`...) as an integer; huge values saturate.
int64_t CountOf(const Json& value) {
    return static_cast<int64_t>(std::min(value.get<double>(), 1e15));
}

bool TypesAdmit(unsigned types, const Json& value) {
    switch (value.type()) {
        case Json::value_t::null:
            return types & kNull;
        case Json::value_t::boolean:
            return types & kBoolean;
        case Json::value_t::object:
            return types & kObject;
        case Json::value_t::array:
            return types & kArray;
        case Json::value_t::string:
            return types & kString;
        case Json::value_t::number_integer:
        case Json::value_t::number_unsigned:
        case Json::value_t::number_float:
            return (types & kNumber) || ((types & kInteger) && IsIntegral(value));
        default:
            return false;
    }
}

// Equality as JSON Schema defines it for `enum` and `const`: member order does not matter and
// 1 equals 1.0 (ordered_json's operator== compares member order).
bool JsonEqual(const Json& a, const Json& b) {
    if (a.is_number() && b.is_number()) return a == b;
    if (a.type() != b.type()) return false;
    if (a.is_array()) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i) {
            if (!JsonEqual(a[i], b[i])) return false;
        }
        return true;
    }
    if (a.is_object()) {
        if (a.size() != b.size()) return false;
        for (const auto& [key, member] : a.items()) {
            auto other = b.find(key);
            if (other == b.end() || !JsonEqual(member, *other)) return false;
        }
        return true;
    }
    return a == b;
}

// JSON Schema lengths count code points, not bytes.
size_t CodePointCount(const std::string& text) {
    size_t count = 0;
    for (unsigned char c : text) count += (c & 0xC0) != 0x80;
    return count;
}

Status SchemaError(const std::string& message) {
    return InvalidArgumentError("json schema: " + message);
}

Status UnsupportedKeyword(std::string_view keyword, const std::string& pointer,
                          std::string_view why = {}) {
    std::string message = "unsupported keyword '" + std::string(keyword) + "' at " + Where(pointer);
    if (!why.empty()) message += " (" + std::string(why) + ")";
    return SchemaError(message);
}

Status UnsupportedValue(std::string_view keyword, const std::string& pointer,
                        const std::string& value, std::string_view supported) {
    return SchemaError("unsupported value '" + value + "' of keyword '" + std::string(keyword) +
                       "' at " + Where(pointer) + " (supported: " + std::string(supported) + ")");
}

Status InvalidKeyword(std::string_view keyword, const std::string& pointer,
                      const std::string& what) {
    return SchemaError("keyword '" + std::string(keyword) + "' at " + Where(pointer) + ": " + what);
}

// Resolves a local `$ref` ('#', '#/$defs/...', '#/definitions/...') to the schema it names.
Status ResolveRef(const Json& root, const Json& ref, const std::string& pointer,
                  const Json** target, std::string* target_pointer) {
    if (!ref.is_string()) return InvalidKeyword("$ref", pointer, "must be a string");
    const std::string& text = ref.get_ref<const std::string&>();
    if (text == "#") {
        *target = &root;
        target_pointer->clear();
        return Status::Ok();
    }
    if (!text.starts_with("#/$defs/") && !text.starts_with("#/definitions/")) {
        return UnsupportedValue("$ref", pointer, text, "'#', '#/$defs/...', '#/definitions/...'");
    }
    try {
        const Json::json_pointer json_pointer(text.substr(1));
        if (!root.contains(json_pointer)) {
            return InvalidKeyword("$ref", pointer, "'" + text + "' does not resolve");
        }
        *target = &root.at(json_pointer);
    } catch (const Json::exception&) {
        return InvalidKeyword("$ref", pointer, "'" + text + "' is not a valid JSON pointer");
    }
    *target_pointer = text.substr(1);
    return Status::Ok();
}

// ---- Formats ------------------------------------------------------------------------------
// The checks mirror the grammar's format rules character for character.

bool Digits(std::string_view text, size_t pos, size_t count) {
    if (pos + count > text.size()) return false;
    for (size_t i = pos; i < pos + count; ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
    }
    return true;
}

int TwoDigits(std::string_view text, size_t pos) {
    return (text[pos] - '0') * 10 + (text[pos + 1] - '0');
}

// YYYY-MM-DD with month 01-12 and day 01-31.
bool IsDate(std::string_view text) {
    if (text.size() != 10 || !Digits(text, 0, 4) || text[4] != '-' || !Digits(text, 5, 2) ||
        text[7] != '-' || !Digits(text, 8, 2)) {
        return false;
    }
    const int month = TwoDigits(text, 5);
    const int day = TwoDigits(text, 8);
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

bool IsHoursMinutes(std::string_view text, size_t pos) {
    return Digits(text, pos, 2) && text[pos + 2] == ':' && Digits(text, pos + 3, 2) &&
           TwoDigits(text, pos) <= 23 && TwoDigits(text, pos + 3) <= 59;
}

// hh:mm:ss, optional fraction of 1-9 digits, then Z or +hh:mm / -hh:mm.
bool IsTime(std::string_view text) {
    if (text.size() < 9 || !IsHoursMinutes(text, 0) || text[5] != ':' || !Digits(text, 6, 2) ||
        TwoDigits(text, 6) > 59) {
        return false;
    }
    size_t pos = 8;
    if (text[pos] == '.') {
        size_t digits = 0;
        while (Digits(text, pos + 1 + digits, 1)) ++digits;
        if (digits < 1 || digits > 9) return false;
        pos += 1 + digits;
    }
    const std::string_view zone = text.substr(pos);
    if (zone == "Z" || zone == "z") return true;
    return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && IsHoursMinutes(zone, 1);
}

bool IsDateTime(std::string_view text) {
    return text.size() > 11 && IsDate(text.substr(0, 10)) && (text[10] == 'T' || text[10] == 't') &&
           IsTime(text.substr(11));
}

bool IsUuid(std::string_view text) {
    if (text.size() != 36) return false;
    for (size_t i = 0; i < text.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (text[i] == '-')) return false;
        if (!dash && !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
    }
    return true;
}

bool MatchesFormat(std::string_view format, std::string_view text) {
    if (format == "date") return IsDate(text);
    if (format == "time") return IsTime(text);
    if (format == "date-time") return IsDateTime(text);
    return IsUuid(text);
}

// ---- SchemaChecker ------------------------------------------------------------------------

// Walks every schema reachable from the root, `$defs` included, and rejects what the subset
// does not cover.
class SchemaChecker {
public:
    explicit SchemaChecker(const Json& root) : root_(root) {}

    Status Check() { return CheckSchema(root_, "", 0); }

private:
    Status CheckSchema(const Json& schema, const std::string& pointer, int depth) {
        if (depth > kMaxSchemaDepth) {
            return SchemaError("schema at " + Where(pointer) + " is nested deeper than " +
                               std::to_string(kMaxSchemaDepth) + " levels");
        }
        if (schema.is_boolean()) return Status::Ok();
        if (!schema.is_object()) {
            return SchemaError("schema at " + Where(pointer) +
                               " must be an object or a boolean, got " +
                               std::string(ValueTypeName(schema)));
        }

        for (const auto& [key, value] : schema.items()) {
            EVENTLOOM_RETURN_IF_ERROR(CheckKeyword(key, value, pointer, depth));
        }
        return CheckCombination(schema, pointer);
    }

    Status CheckKeyword(const std::string& key, const Json& value, const std::string& pointer,
                        int depth) {
        const std::string at = Child(pointer, key);
        if (IsAnnotation(key) || key == "const") return Status::Ok();
        if (IsDefinitions(key)) return CheckSchemaMap(key, value, pointer, depth);
        if (key == "properties") return CheckSchemaMap(key, value, pointer, depth);
        if (key == "additionalProperties") return CheckSchema(value, at, depth + 1);
        if (key == "$ref") {
            const Json* target = nullptr;
            std::string target_pointer;
            return ResolveRef(root_, value, pointer, &target, &target_pointer);
        }
        if (key == "anyOf" || key == "oneOf") {
            if (!value.is_array() || value.empty()) {
                return InvalidKeyword(key, pointer, "must be a non-empty array of schemas");
            }
            for (size_t i = 0; i < value.size(); ++i) {
                EVENTLOOM_RETURN_IF_ERROR(CheckSchema(value[i], Child(at, i), depth + 1));
            }
            return Status::Ok();
        }
        if (key == "items") {
            if (value.is_array()) return UnsupportedKeyword(key, pointer, "tuple form");
            return CheckSchema(value, at, depth + 1);
        }
        if (key == "type") return CheckType(value, pointer);
        if (key == "enum") {
            if (!value.is_array() || value.empty()) {
                return InvalidKeyword(key, pointer, "must be a non-empty array");
            }
            return Status::Ok();
        }
        if (key == "required") return CheckRequired(value, pointer);
        if (key == "minItems" || key == "maxItems" || key == "minLength" || key == "maxLength") {
            if (!IsNonNegativeIntegral(value)) {
                return InvalidKeyword(key, pointer, "must be a non-negative integer");
            }
            return Status::Ok();
        }
        if (key == "minimum" || key == "maximum" || key == "exclusiveMinimum" ||
            key == "exclusiveMaximum") {
            if (!value.is_number()) return InvalidKeyword(key, pointer, "must be a number");
            return Status::Ok();
        }
        if (key == "format") {
            if (!value.is_string() || !OneOf(value.get_ref<const std::string&>(), kFormats)) {
                return UnsupportedValue(key, pointer,
                                        value.is_string() ? value.get<std::string>() : Dump(value),
                                        "date, time, date-time, uuid");
            }
            return Status::Ok();
        }
        return UnsupportedKeyword(key, pointer);
    }

    // `properties`, `$defs`, `definitions`: an object whose members are schemas.
    Status CheckSchemaMap(const std::string& key, const Json& value, const std::string& pointer,
                          int depth) {
        if (!value.is_object()) return InvalidKeyword(key, pointer, "must be an object of schemas");
        const std::string at = Child(pointer, key);
        for (const auto& [name, schema] : value.items()) {
            EVENTLOOM_RETURN_IF_ERROR(CheckSchema(schema, Child(at, name), depth + 1));
        }
        return Status::Ok();
    }

    static Status CheckType(const Json& type, const std::string& pointer) {
        const bool is_list = type.is_array() && !type.empty();
        if (!type.is_string() && !is_list) {
            return InvalidKeyword("type", pointer, "must be a type name or an array of them");
        }
        std::set<std::string> seen;
        for (const Json& name : is_list ? type : Json::array({type})) {
            if (!name.is_string() || TypeBitOf(name.get_ref<const std::string&>()) == 0) {
                return InvalidKeyword("type", pointer, Dump(name) + " is not a JSON Schema type");
            }
            if (!seen.insert(name.get<std::string>()).second) {
                return InvalidKeyword("type", pointer, Dump(name) + " is listed twice");
            }
        }
        return Status::Ok();
    }

    static Status CheckRequired(const Json& required, const std::string& pointer) {
        if (!required.is_array()) {
            return InvalidKeyword("required", pointer, "must be an array of property names");
        }
        std::set<std::string> seen;
        for (const Json& name : required) {
            if (!name.is_string()) {
                return InvalidKeyword("required", pointer, "must be an array of property names");
            }
            if (!seen.insert(name.get<std::string>()).second) {
                return InvalidKeyword("required", pointer, Dump(name) + " is listed twice");
            }
        }
        return Status::Ok();
    }

    // Rules about keywords together, once each keyword is known to be well formed.
    static Status CheckCombination(const Json& schema, const std::string& pointer) {
        EVENTLOOM_RETURN_IF_ERROR(CheckCombinatorStandsAlone(schema, pointer));

        if (auto type = schema.find("type"); type != schema.end()) {
            const unsigned declared = DeclaredTypes(*type);
            for (const auto& [key, value] : schema.items()) {
                const TypedKeyword* keyword = FindTypedKeyword(key);
                if (keyword != nullptr && (keyword->types & declared) == 0) {
                    return InvalidKeyword(key, pointer, "does not apply to type " + Dump(*type));
                }
            }
        }

        static constexpr std::pair<const char*, const char*> kRanges[] = {
            {"minItems", "maxItems"}, {"minLength", "maxLength"}};
        for (const auto& [min, max] : kRanges) {
            if (schema.contains(min) && schema.contains(max) &&
                schema[min].get<double>() > schema[max].get<double>()) {
                return InvalidKeyword(min, pointer, "is greater than '" + std::string(max) + "'");
            }
        }

        static const Json kNoProperties = Json::object();
        auto found = schema.find("properties");
        const Json& properties = found != schema.end() ? *found : kNoProperties;
        if (auto required = schema.find("required"); required != schema.end()) {
            for (const Json& name : *required) {
                if (!properties.contains(name.get<std::string>())) {
                    return InvalidKeyword("required", pointer,
                                          "names " + Dump(name) + ", which 'properties' lacks");
                }
            }
        }
        auto additional = schema.find("additionalProperties");
        if (additional != schema.end() && *additional != Json(false) && !properties.empty()) {
            return UnsupportedKeyword("additionalProperties", pointer,
                                      "true or a schema only on objects without 'properties'");
        }
        return Status::Ok();
    }

    // `$ref`, `anyOf` and `oneOf` take no sibling keywords but annotations and definitions.
    static Status CheckCombinatorStandsAlone(const Json& schema, const std::string& pointer) {
        std::string combinator;
        for (const auto& [key, value] : schema.items()) {
            if (IsCombinator(key)) {
                combinator = key;
                break;
            }
        }
        if (combinator.empty()) return Status::Ok();
        for (const auto& [key, value] : schema.items()) {
            if (key == combinator || IsAnnotation(key) || IsDefinitions(key)) continue;
            return UnsupportedKeyword(key, pointer,
                                      "only annotations may stand next to '" + combinator + "'");
        }
        return Status::Ok();
    }

    const Json& root_;
};

// ---- Validator ----------------------------------------------------------------------------

// Checks values against a schema that SchemaChecker accepted.
class Validator {
public:
    explicit Validator(const Json& root) : root_(root) {}

    Status Check(const Json& schema, const std::string& schema_pointer, const Json& value) {
        return CheckValue(schema, schema_pointer, value, "", 0, 0);
    }

private:
    static Status Fail(const std::string& value_pointer, std::string_view keyword,
                       const std::string& detail) {
        return InvalidArgumentError("json schema validation: value at " + Where(value_pointer) +
                                    " fails '" + std::string(keyword) + "': " + detail);
    }

    Status CheckValue(const Json& schema, const std::string& schema_pointer, const Json& value,
                      const std::string& value_pointer, int depth, int refs) {
        if (depth > kMaxValueDepth) {
            return InvalidArgumentError("json schema validation: value at " + Where(value_pointer) +
                                        " is nested deeper than " + std::to_string(kMaxValueDepth) +
                                        " levels");
        }
        if (schema.is_boolean()) {
            if (schema.get<bool>()) return Status::Ok();
            return Fail(value_pointer, "false", "the schema allows no value here");
        }

        if (auto ref = schema.find("$ref"); ref != schema.end()) {
            return CheckRef(*ref, schema_pointer, value, value_pointer, depth, refs);
        }
        for (const char* key : {"anyOf", "oneOf"}) {
            if (auto alternatives = schema.find(key); alternatives != schema.end()) {
                return CheckAlternatives(key, *alternatives, Child(schema_pointer, key), value,
                                         value_pointer, depth, refs);
            }
        }

        if (IsAnySchema(schema)) return Status::Ok();
        const unsigned types = SchemaTypes(schema);
        if (!TypesAdmit(types, value)) {
            std::string detail =
                "expected " + TypesText(types) + ", got " + std::string(ValueTypeName(value));
            if (!schema.contains("type")) detail += " (the type its keywords imply)";
            return Fail(value_pointer, "type", detail);
        }
        if (auto expected = schema.find("const");
            expected != schema.end() && !JsonEqual(*expected, value)) {
            return Fail(value_pointer, "const", "expected " + Dump(*expected));
        }
        if (auto values = schema.find("enum"); values != schema.end()) {
            auto equal = [&value](const Json& candidate) { return JsonEqual(candidate, value); };
            if (std::none_of(values->begin(), values->end(), equal)) {
                return Fail(value_pointer, "enum", Dump(value) + " is not one of " + Dump(*values));
            }
        }

        if (value.is_object()) {
            return CheckObject(schema, schema_pointer, value, value_pointer, depth);
        }
        if (value.is_array())
            return CheckArray(schema, schema_pointer, value, value_pointer, depth);
        if (value.is_string()) return CheckString(schema, value, value_pointer);
        if (value.is_number()) return CheckNumber(schema, value, value_pointer);
        return Status::Ok();
    }

    Status CheckRef(const Json& ref, const std::string& schema_pointer, const Json& value,
                    const std::string& value_pointer, int depth, int refs) {
        if (refs >= kMaxRefsWithoutProgress) {
            loop_ =
                InvalidKeyword("$ref", schema_pointer, "references loop without consuming input");
            return loop_;
        }
        const Json* target = nullptr;
        std::string target_pointer;
        EVENTLOOM_RETURN_IF_ERROR(ResolveRef(root_, ref, schema_pointer, &target, &target_pointer));
        return CheckValue(*target, target_pointer, value, value_pointer, depth, refs + 1);
    }

    // anyOf: at least one alternative matches; oneOf: exactly one does. A `$ref` loop met in
    // an alternative ends the check rather than counting as a mismatch (trying the other
    // alternatives at every level could take exponential time).
    Status CheckAlternatives(std::string_view keyword, const Json& alternatives,
                             const std::string& pointer, const Json& value,
                             const std::string& value_pointer, int depth, int refs) {
        size_t matches = 0;
        for (size_t i = 0; i < alternatives.size(); ++i) {
            Status status =
                CheckValue(alternatives[i], Child(pointer, i), value, value_pointer, depth, refs);
            if (!loop_.ok()) return loop_;
            if (!status.ok()) continue;
            ++matches;
            if (keyword == "anyOf") return Status::Ok();
        }
        const std::string count = std::to_string(alternatives.size());
        if (matches == 0) {
            return Fail(value_pointer, keyword, "matches none of the " + count + " alternatives");
        }
        if (matches > 1) {
            return Fail(value_pointer, keyword,
                        "matches " + std::to_string(matches) + " of the " + count +
                            " alternatives, not exactly one");
        }
        return Status::Ok();
    }

    Status CheckObject(const Json& schema, const std::string& schema_pointer, const Json& value,
                       const std::string& value_pointer, int depth) {
        if (auto required = schema.find("required"); required != schema.end()) {
            for (const Json& name : *required) {
                if (!value.contains(name.get<std::string>())) {
                    return Fail(value_pointer, "required", "missing property " + Dump(name));
                }
            }
        }

        const ObjectShape shape = ShapeOf(schema);
        for (const auto& [key, member] : value.items()) {
            const std::string member_pointer = Child(value_pointer, key);
            switch (shape) {
                case ObjectShape::kAny:
                    break;
                case ObjectShape::kEmpty:
                    return Fail(member_pointer, "additionalProperties",
                                "the object allows no members");
                case ObjectShape::kDeclared: {
                    auto property = schema["properties"].find(key);
                    if (property == schema["properties"].end()) {
                        return Fail(member_pointer, "additionalProperties",
                                    "'" + key + "' is not declared in 'properties'");
                    }
                    EVENTLOOM_RETURN_IF_ERROR(
                        CheckValue(*property, Child(Child(schema_pointer, "properties"), key),
                                   member, member_pointer, depth + 1, 0));
                    break;
                }
                case ObjectShape::kMap:
                    EVENTLOOM_RETURN_IF_ERROR(
                        CheckValue(schema["additionalProperties"],
                                   Child(schema_pointer, "additionalProperties"), member,
                                   member_pointer, depth + 1, 0));
                    break;
            }
        }
        return Status::Ok();
    }

    Status CheckArray(const Json& schema, const std::string& schema_pointer, const Json& value,
                      const std::string& value_pointer, int depth) {
        const std::string size = std::to_string(value.size());
        if (auto min = schema.find("minItems");
            min != schema.end() && value.size() < min->get<double>()) {
            return Fail(value_pointer, "minItems",
                        "has " + size + " items, fewer than " + Dump(*min));
        }
        if (auto max = schema.find("maxItems");
            max != schema.end() && value.size() > max->get<double>()) {
            return Fail(value_pointer, "maxItems",
                        "has " + size + " items, more than " + Dump(*max));
        }
        auto items = schema.find("items");
        if (items == schema.end()) return Status::Ok();
        for (size_t i = 0; i < value.size(); ++i) {
            EVENTLOOM_RETURN_IF_ERROR(CheckValue(*items, Child(schema_pointer, "items"), value[i],
                                                 Child(value_pointer, i), depth + 1, 0));
        }
        return Status::Ok();
    }

    static Status CheckString(const Json& schema, const Json& value,
                              const std::string& value_pointer) {
        const std::string& text = value.get_ref<const std::string&>();
        const size_t length = CodePointCount(text);
        const std::string has = "has " + std::to_string(length) + " characters, ";
        if (auto min = schema.find("minLength");
            min != schema.end() && length < min->get<double>()) {
            return Fail(value_pointer, "minLength", has + "fewer than " + Dump(*min));
        }
        if (auto max = schema.find("maxLength");
            max != schema.end() && length > max->get<double>()) {
            return Fail(value_pointer, "maxLength", has + "more than " + Dump(*max));
        }
        if (auto format = schema.find("format");
            format != schema.end() && !MatchesFormat(format->get<std::string>(), text)) {
            return Fail(value_pointer, "format",
                        Dump(value) + " is not a " + format->get<std::string>());
        }
        return Status::Ok();
    }

    static Status CheckNumber(const Json& schema, const Json& value,
                              const std::string& value_pointer) {
        const double number = value.get<double>();
        struct Bound {
            const char* keyword;
            bool (*holds)(double number, double bound);
            const char* relation;
        };
        static constexpr Bound kBounds[] = {
            {"minimum", [](double n, double b) { return n >= b; }, "at least"},
            {"maximum", [](double n, double b) { return n <= b; }, "at most"},
            {"exclusiveMinimum", [](double n, double b) { return n > b; }, "more than"},
            {"exclusiveMaximum", [](double n, double b) { return n < b; }, "less than"},
        };
        for (const Bound& bound : kBounds) {
            auto limit = schema.find(bound.keyword);
            if (limit != schema.end() && !bound.holds(number, limit->get<double>())) {
                return Fail(value_pointer, bound.keyword,
                            Dump(value) + " is not " + bound.relation + " " + Dump(*limit));
            }
        }
        return Status::Ok();
    }

    const Json& root_;
    Status loop_;  // set when `$ref`s loop without consuming input: ends the whole check
};

// ---- GrammarBuilder -----------------------------------------------------------------------

// The fixed rules, emitted only when used. `deps` are the rules each one references.
struct Primitive {
    std::string_view name;
    std::string_view body;
    std::string_view deps;  // space-separated
};
constexpr Primitive kPrimitives[] = {
    // At most one space or newline wherever JSON allows whitespace.
    {"ws", R"([ \n]?)", ""},
    {"value", "object | array | string | number | boolean | null",
     "object array string number boolean null"},
    {"object", R"("{" ws ( member ( ws "," ws member )* ws )? "}")", "ws member"},
    {"member", R"(string ws ":" ws value)", "string ws value"},
    {"array", R"("[" ws ( value ( ws "," ws value )* ws )? "]")", "ws value"},
    {"string", R"("\"" char* "\"")", "char"},
    // Any code point but '"', '\' and controls, or an escape.
    {"char", R"([^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ))", ""},
    {"number", R"("-"? uint frac? exp?)", "uint frac exp"},
    {"nonneg-number", R"(uint frac? exp?)", "uint frac exp"},
    {"integer", R"("-"? uint)", "uint"},
    // Bounded so that a model cannot run on digit after digit.
    {"uint", R"("0" | [1-9] [0-9]{0,18})", ""},
    {"frac", R"("." [0-9]{1,20})", ""},
    {"exp", R"([eE] [-+]? [0-9]{1,3})", ""},
    {"boolean", R"("true" | "false")", ""},
    {"null", R"("null")", ""},
    {"date", R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))",
     ""},
    {"hh-mm", R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9])", ""},
    {"time", R"(hh-mm ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( [zZ] | [+-] hh-mm ))", "hh-mm"},
    {"date-time", R"(date [tT] time)", "date time"},
    {"uuid", R"([0-9a-fA-F]{8} ( "-" [0-9a-fA-F]{4} ){3} "-" [0-9a-fA-F]{12})", ""},
    {"date-string", R"("\"" date "\"")", "date"},
    {"time-string", R"("\"" time "\"")", "time"},
    {"date-time-string", R"("\"" date-time "\"")", "date-time"},
    {"uuid-string", R"("\"" uuid "\"")", "uuid"},
};

// A GBNF string literal matching `text` exactly.
std::string GbnfLiteral(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out = "\"";
    for (char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (byte < 0x20) {
            out += "\\x";
            out.push_back(kHex[byte >> 4]);
            out.push_back(kHex[byte & 0xF]);
        } else {
            out.push_back(c);  // UTF-8 passes through: GBNF literals are UTF-8
        }
    }
    out.push_back('"');
    return out;
}

// A rule name made of letters, digits and '-', from any text.
std::string Sanitize(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (std::isalnum(static_cast<unsigned char>(c))) {
            out.push_back(c);
        } else if (!out.empty() && out.back() != '-') {
            out.push_back('-');
        }
    }
    if (out.size() > kMaxRuleNameLength) out.resize(kMaxRuleNameLength);
    while (!out.empty() && out.back() == '-') out.pop_back();
    return out.empty() ? "prop" : out;
}

bool IsRuleName(const std::string& text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
    });
}

// "( a | b )", or the one alternative alone.
std::string Alternation(const std::vector<std::string>& alternatives) {
    if (alternatives.size() == 1) return alternatives.front();
    std::string out = "(";
    for (size_t i = 0; i < alternatives.size(); ++i) {
        out += (i == 0 ? " " : " | ") + alternatives[i];
    }
    return out + " )";
}

// "", "?", "*", "{2,5}" ...: `count` repetitions of what precedes it, for count in [min, max]
// (max < 0: unbounded).
std::string Repetition(int64_t min, int64_t max) {
    if (max < 0) {
        if (min == 0) return "*";
        if (min == 1) return "+";
        return "{" + std::to_string(min) + ",}";
    }
    if (min == max) return min == 1 ? "" : "{" + std::to_string(min) + "}";
    if (min == 0 && max == 1) return "?";
    return "{" + std::to_string(min) + "," + std::to_string(max) + "}";
}

// Builds the grammar for a schema that SchemaChecker accepted. Each schema node becomes an
// expression; nodes that are more than one name become rules named after where they are
// (property names, "-item", "-0" for alternatives). A `$ref` target becomes one rule, shared
// by every reference and named before its body is built, so recursion works. A reference that
// can be reached again before any character is consumed would be left recursion, which
// llama.cpp rejects; those loops are found here and reported against the schema.
class GrammarBuilder {
public:
    explicit GrammarBuilder(const Json& root) : root_(root) {
        for (const Primitive& primitive : kPrimitives) names_.insert(std::string(primitive.name));
        names_.insert("root");
    }

    Result<std::string> Build() {
        rules_.push_back({"root", ""});
        ref_rules_[""] = "root";
        EVENTLOOM_ASSIGN_OR_RETURN(rules_[0].body, Expr(root_, "", "root"));
        EVENTLOOM_RETURN_IF_ERROR(CheckLeftRecursion());

        std::string grammar;
        for (const Rule& rule : rules_) grammar += rule.name + " ::= " + rule.body + "\n";
        return grammar;
    }

private:
    struct Rule {
        std::string name;
        std::string body;
    };
    struct LeftEdge {
        std::string target;   // a `$ref` rule reachable without consuming input
        std::string pointer;  // the schema with the `$ref`
    };

    // An expression for `schema`, safe to place in a sequence (alternations are grouped).
    Result<std::string> Expr(const Json& schema, const std::string& pointer,
                             const std::string& hint) {
        if (schema.is_boolean() && !schema.get<bool>()) {
            return SchemaError("schema at " + Where(pointer) +
                               " is false: no value can be generated");
        }
        if (IsAnySchema(schema)) return Use("value");
        if (auto ref = schema.find("$ref"); ref != schema.end()) return RefExpr(*ref, pointer);
        for (const char* key : {"anyOf", "oneOf"}) {
            if (auto alternatives = schema.find(key); alternatives != schema.end()) {
                return AlternativesExpr(*alternatives, Child(pointer, key), hint);
            }
        }
        if (schema.contains("enum") || schema.contains("const")) return EnumExpr(schema, pointer);
        return TypesExpr(schema, pointer, hint);
    }

    // The name to reference for `schema`: a new rule, unless its expression is a name already.
    Result<std::string> RuleFor(const Json& schema, const std::string& pointer,
                                const std::string& hint) {
        EVENTLOOM_ASSIGN_OR_RETURN(std::string body, Expr(schema, pointer, hint));
        if (IsRuleName(body)) return body;
        return AddRule(hint, std::move(body));
    }

    Result<std::string> RefExpr(const Json& ref, const std::string& pointer) {
        const Json* target = nullptr;
        std::string target_pointer;
        EVENTLOOM_RETURN_IF_ERROR(ResolveRef(root_, ref, pointer, &target, &target_pointer));

        std::string name;
        if (auto known = ref_rules_.find(target_pointer); known != ref_rules_.end()) {
            name = known->second;
        } else {
            name = NewName(Sanitize(target_pointer.substr(target_pointer.rfind('/') + 1)));
            ref_rules_[target_pointer] = name;
            const size_t slot = rules_.size();
            rules_.push_back({name, ""});

            // The target's body starts a new rule: at its start nothing is consumed yet.
            const std::string outer_ref = std::exchange(current_ref_, name);
            const bool outer_leftmost = std::exchange(leftmost_, true);
            EVENTLOOM_ASSIGN_OR_RETURN(std::string body, Expr(*target, target_pointer, name));
            current_ref_ = outer_ref;
            leftmost_ = outer_leftmost;
            rules_[slot].body = std::move(body);
        }
        if (leftmost_) left_edges_[current_ref_].push_back({name, pointer});
        return name;
    }

    Result<std::string> AlternativesExpr(const Json& alternatives, const std::string& pointer,
                                         const std::string& hint) {
        std::vector<std::string> names;
        for (size_t i = 0; i < alternatives.size(); ++i) {
            if (alternatives[i] == Json(false)) continue;  // matches nothing: drop it
            EVENTLOOM_ASSIGN_OR_RETURN(std::string name, RuleFor(alternatives[i], Child(pointer, i),
                                                                 hint + "-" + std::to_string(i)));
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
        if (names.empty()) {
            return SchemaError("every alternative at " + Where(pointer) +
                               " is false: no value can be generated");
        }
        return Alternation(names);
    }

    // The values of `const` or `enum` that also pass the schema's other keywords, as literals.
    Result<std::string> EnumExpr(const Json& schema, const std::string& pointer) {
        const bool is_const = schema.contains("const");
        const Json candidates = is_const ? Json::array({schema["const"]}) : schema["enum"];
        Validator validator(root_);
        std::vector<std::string> literals;
        for (const Json& candidate : candidates) {
            if (!validator.Check(schema, pointer, candidate).ok()) continue;
            std::string literal = GbnfLiteral(Dump(candidate));
            if (std::find(literals.begin(), literals.end(), literal) == literals.end()) {
                literals.push_back(std::move(literal));
            }
        }
        if (literals.empty()) {
            return InvalidKeyword(is_const ? "const" : "enum", pointer,
                                  "no value fits the schema's other keywords");
        }
        return Alternation(literals);
    }

    Result<std::string> TypesExpr(const Json& schema, const std::string& pointer,
                                  const std::string& hint) {
        unsigned types = SchemaTypes(schema);
        if (types & kNumber) types &= ~kInteger;  // a number may be an integer already
        std::vector<std::string> parts;
        if (types & kObject) {
            EVENTLOOM_ASSIGN_OR_RETURN(std::string object, ObjectExpr(schema, pointer, hint));
            parts.push_back(std::move(object));
        }
        if (types & kArray) {
            EVENTLOOM_ASSIGN_OR_RETURN(std::string array, ArrayExpr(schema, pointer, hint));
            parts.push_back(std::move(array));
        }
        if (types & kString) {
            EVENTLOOM_ASSIGN_OR_RETURN(std::string string, StringExpr(schema, pointer));
            parts.push_back(std::move(string));
        }
        if (types & (kNumber | kInteger)) parts.push_back(NumberExpr(schema, types & kInteger));
        if (types & kBoolean) parts.push_back(Use("boolean"));
        if (types & kNull) parts.push_back(Use("null"));
        return Alternation(parts);
    }

    Result<std::string> ObjectExpr(const Json& schema, const std::string& pointer,
                                   const std::string& hint) {
        Use("ws");
        const bool outer_leftmost = std::exchange(leftmost_, false);  // "{" comes first
        Result<std::string> expr = ObjectBody(schema, pointer, hint);
        leftmost_ = outer_leftmost;
        return expr;
    }

    Result<std::string> ObjectBody(const Json& schema, const std::string& pointer,
                                   const std::string& hint) {
        switch (ShapeOf(schema)) {
            case ObjectShape::kAny:
                return Use("object");
            case ObjectShape::kEmpty:
                return std::string(R"("{" ws "}")");
            case ObjectShape::kDeclared:
                return PropertiesExpr(schema, pointer, hint);
            case ObjectShape::kMap:
                return MapExpr(schema["additionalProperties"], pointer, hint);
        }
        return InternalError("json schema: unknown object shape");
    }

    // Members with any names whose values match `additional`.
    Result<std::string> MapExpr(const Json& additional, const std::string& pointer,
                                const std::string& hint) {
        EVENTLOOM_ASSIGN_OR_RETURN(
            std::string value,
            RuleFor(additional, Child(pointer, "additionalProperties"), hint + "-value"));
        const std::string member =
            AddRule(hint + "-member", Use("string") + " ws \":\" ws " + value);
        return "\"{\" ws ( " + member + " ( ws \",\" ws " + member + " )* ws )? \"}\"";
    }

    // Members in declared order; required ones always, optional ones maybe. With members
    // k0..kn, the first member present is one of the optional ones before the first required
    // one, or that required one; each later member is preceded by a comma.
    Result<std::string> PropertiesExpr(const Json& schema, const std::string& pointer,
                                       const std::string& hint) {
        std::set<std::string> required;
        if (auto names = schema.find("required"); names != schema.end()) {
            for (const Json& name : *names) required.insert(name.get<std::string>());
        }

        struct Member {
            std::string rule;
            bool optional;
        };
        std::vector<Member> members;
        const std::string properties_pointer = Child(pointer, "properties");
        for (const auto& [key, property] : schema["properties"].items()) {
            const bool optional = required.count(key) == 0;
            if (optional && property == Json(false)) continue;  // may never be present
            const std::string name = (pointer.empty() ? "" : hint + "-") + Sanitize(key);
            EVENTLOOM_ASSIGN_OR_RETURN(std::string value,
                                       RuleFor(property, Child(properties_pointer, key), name));
            std::string body = GbnfLiteral(Dump(Json(key))) + " ws \":\" ws " + value;
            members.push_back({AddRule(name + "-kv", std::move(body)), optional});
        }
        if (members.empty()) return std::string(R"("{" ws "}")");

        // rest[i]: members i.. when one is already written.
        std::vector<std::string> rest(members.size() + 1);
        for (size_t i = members.size(); i-- > 0;) {
            const std::string item = "ws \",\" ws " + members[i].rule;
            rest[i] = (members[i].optional ? "( " + item + " )?" : item) +
                      (rest[i + 1].empty() ? "" : " " + rest[i + 1]);
        }
        std::vector<std::string> firsts;
        bool any_required = false;
        for (size_t i = 0; i < members.size() && !any_required; ++i) {
            firsts.push_back(members[i].rule + (rest[i + 1].empty() ? "" : " " + rest[i + 1]));
            any_required = !members[i].optional;
        }
        const std::string body = Alternation(firsts);
        if (any_required) return "\"{\" ws " + body + " ws \"}\"";
        return "\"{\" ws ( " + body + " ws )? \"}\"";
    }

    Result<std::string> ArrayExpr(const Json& schema, const std::string& pointer,
                                  const std::string& hint) {
        Use("ws");
        const int64_t min = schema.contains("minItems") ? CountOf(schema["minItems"]) : 0;
        int64_t max = schema.contains("maxItems") ? CountOf(schema["maxItems"]) : -1;
        auto items = schema.find("items");
        const bool no_items = items != schema.end() && *items == Json(false);
        if (no_items) max = 0;
        if (min > kMaxGrammarRepetition) return TooManyRepetitions("minItems", pointer, min);
        if (max > kMaxGrammarRepetition) max = -1;
        if (max == 0) {
            if (min > 0) return InvalidKeyword("minItems", pointer, "no item can be generated");
            return std::string(R"("[" ws "]")");
        }

        const bool outer_leftmost = std::exchange(leftmost_, false);  // "[" comes first
        Result<std::string> item = items == schema.end()
                                       ? Result<std::string>(Use("value"))
                                       : RuleFor(*items, Child(pointer, "items"), hint + "-item");
        leftmost_ = outer_leftmost;
        if (!item.ok()) return item.status();

        // The first item, then the others after commas.
        const int64_t more_min = std::max<int64_t>(min - 1, 0);
        const int64_t more_max = max < 0 ? -1 : max - 1;
        std::string items_expr = *item;
        if (more_max != 0) {
            items_expr += " ( ws \",\" ws " + *item + " )" + Repetition(more_min, more_max);
        }
        if (min == 0) return "\"[\" ws ( " + items_expr + " ws )? \"]\"";
        return "\"[\" ws " + items_expr + " ws \"]\"";
    }

    Result<std::string> StringExpr(const Json& schema, const std::string& pointer) {
        if (auto format = schema.find("format"); format != schema.end()) {
            return Use(format->get<std::string>() + "-string");
        }
        if (!schema.contains("minLength") && !schema.contains("maxLength")) return Use("string");
        const int64_t min = schema.contains("minLength") ? CountOf(schema["minLength"]) : 0;
        int64_t max = schema.contains("maxLength") ? CountOf(schema["maxLength"]) : -1;
        if (min > kMaxGrammarRepetition) return TooManyRepetitions("minLength", pointer, min);
        if (max > kMaxGrammarRepetition) max = -1;
        if (max == 0) return std::string(R"("\"\"")");
        return "\"\\\"\" " + Use("char") + Repetition(min, max) + " \"\\\"\"";
    }

    std::string NumberExpr(const Json& schema, bool integer) {
        // An integer between two close bounds (a rating, a level) is spelled out, so that the
        // model can only pick one of them.
        if (integer) {
            std::optional<int64_t> low, high;
            if (auto b = schema.find("minimum"); b != schema.end()) {
                low = static_cast<int64_t>(std::ceil(b->get<double>()));
            }
            if (auto b = schema.find("exclusiveMinimum"); b != schema.end()) {
                int64_t bound = static_cast<int64_t>(std::floor(b->get<double>())) + 1;
                low = low ? std::max(*low, bound) : bound;
            }
            if (auto b = schema.find("maximum"); b != schema.end()) {
                high = static_cast<int64_t>(std::floor(b->get<double>()));
            }
            if (auto b = schema.find("exclusiveMaximum"); b != schema.end()) {
                int64_t bound = static_cast<int64_t>(std::ceil(b->get<double>())) - 1;
                high = high ? std::min(*high, bound) : bound;
            }
            if (low && high && *low <= *high && *high - *low < kMaxSpelledIntegers) {
                std::string body;
                for (int64_t n = *low; n <= *high; ++n) {
                    if (!body.empty()) body += " | ";
                    body += "\"" + std::to_string(n) + "\"";
                }
                return "(" + body + ")";
            }
        }
        // A lower bound of 0 or more rules out the minus sign.
        bool non_negative = false;
        for (const char* key : {"minimum", "exclusiveMinimum"}) {
            auto bound = schema.find(key);
            if (bound != schema.end() && bound->get<double>() >= 0) non_negative = true;
        }
        if (integer) return non_negative ? Use("uint") : Use("integer");
        return non_negative ? Use("nonneg-number") : Use("number");
    }

    static Status TooManyRepetitions(std::string_view keyword, const std::string& pointer,
                                     int64_t count) {
        return InvalidKeyword(keyword, pointer,
                              std::to_string(count) + " is more than the grammar supports (" +
                                  std::to_string(kMaxGrammarRepetition) + ")");
    }

    // Emits a fixed rule, and those it references, the first time it is used.
    std::string Use(const std::string& name) {
        if (!used_.insert(name).second) return name;
        for (const Primitive& primitive : kPrimitives) {
            if (primitive.name != name) continue;
            rules_.push_back({name, std::string(primitive.body)});
            std::string_view deps = primitive.deps;
            while (!deps.empty()) {
                const size_t end = std::min(deps.find(' '), deps.size());
                Use(std::string(deps.substr(0, end)));
                deps.remove_prefix(std::min(end + 1, deps.size()));
            }
        }
        return name;
    }

    std::string AddRule(const std::string& hint, std::string body) {
        std::string name = NewName(hint);
        rules_.push_back({name, std::move(body)});
        return name;
    }

    // `hint`, or `hint-2`, `hint-3`... if taken.
    std::string NewName(const std::string& hint) {
        std::string base = hint.substr(0, kMaxRuleNameLength);
        std::string name = base;
        for (int n = 2; !names_.insert(name).second; ++n) name = base + "-" + std::to_string(n);
        return name;
    }

    // A `$ref` rule that reaches itself without consuming input is left recursion.
    Status CheckLeftRecursion() const {
        std::map<std::string, int> state;  // 1: on the current path, 2: done
        for (const auto& [rule, edges] : left_edges_) {
            EVENTLOOM_RETURN_IF_ERROR(VisitLeftEdges(rule, &state));
        }
        return Status::Ok();
    }

    Status VisitLeftEdges(const std::string& rule, std::map<std::string, int>* state) const {
        int& mark = (*state)[rule];
        if (mark == 2) return Status::Ok();
        mark = 1;
        if (auto edges = left_edges_.find(rule); edges != left_edges_.end()) {
            for (const LeftEdge& edge : edges->second) {
                if ((*state)[edge.target] == 1) {
                    return InvalidKeyword("$ref", edge.pointer,
                                          "references loop without consuming input");
                }
                EVENTLOOM_RETURN_IF_ERROR(VisitLeftEdges(edge.target, state));
            }
        }
        (*state)[rule] = 2;
        return Status::Ok();
    }

    const Json& root_;
    std::vector<Rule> rules_;  // in output order; root first
    std::set<std::string> names_;
    std::set<std::string> used_;                    // fixed rules already emitted
    std::map<std::string, std::string> ref_rules_;  // `$ref` target pointer -> rule
    std::map<std::string, std::vector<LeftEdge>> left_edges_;
    std::string current_ref_ = "root";  // the `$ref` rule whose body is being built
    bool leftmost_ = true;              // nothing consumed yet in that rule
};

// Parses schema text, rejecting nesting deeper than kMaxSchemaDepth.
Status ParseSchemaText(std::string_view text, Json* out) {
    bool too_deep = false;
    Json::parser_callback_t limit_depth = [&too_deep](int depth, Json::parse_event_t event,
                                                      Json& /*parsed*/) {
        const bool opens =
            event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start;
        if (opens && depth >= kMaxSchemaDepth) {
            too_deep = true;
            return false;  // skip the subtree rather than build it
        }
        return true;
    };
    try {
        *out = Json::parse(text.begin(), text.end(), limit_depth);
    } catch (const Json::exception& e) {
        // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
        // (or out_of_range.406 for a number too large for a double).
        std::string what = e.what();
        if (size_t prefix_end = what.find("] "); prefix_end != std::string::npos) {
            what.erase(0, prefix_end + 2);
        }
        return SchemaError("malformed schema text: " + what);
    }
    if (too_deep) {
        return SchemaError("malformed schema text: nested deeper than " +
                           std::to_string(kMaxSchemaDepth) + " levels");
    }
    return Status::Ok();
}

}  // namespace

Result<std::string> JsonSchemaToGbnf(std::string_view schema_json) {
    Json schema;
    EVENTLOOM_RETURN_IF_ERROR(ParseSchemaText(schema_json, &schema));
    EVENTLOOM_RETURN_IF_ERROR(SchemaChecker(schema).Check());
    return GrammarBuilder(schema).Build();
}

Status ValidateJsonAgainstSchema(const nlohmann::json& schema, const nlohmann::json& value) {
    const Json ordered_schema(schema);
    const Json ordered_value(value);
    EVENTLOOM_RETURN_IF_ERROR(SchemaChecker(ordered_schema).Check());
    return Validator(ordered_schema).Check(ordered_schema, "", ordered_value);
}

}  // namespace eventloom::llm
