// The tokens of template holes and conditions, and the paths and literals both share.
// Internal to the expr library.
//
// Tokens: identifiers ([A-Za-z_][A-Za-z0-9_-]*), strings ("..." or '...', with \" \' \\ \n
// \t \r \/ escapes), numbers (-?digits[.digits]), and the punctuation
//   | : , . ( ) [ ] == != < <= > >= && || ! }}
// Offsets count bytes from the start of the text being compiled, so errors can name a column.
// A Lexer reads one text; not thread-safe. Parsed paths and literals are plain values.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::pipeline::expr_internal {

enum class TokenKind { kIdent, kString, kNumber, kPunct, kEnd, kError };

struct Token {
    TokenKind kind = TokenKind::kEnd;
    std::string text;  // identifier, decoded string, number text, punctuation, or error message
    size_t offset = 0;
};

class Lexer {
public:
    Lexer(std::string_view text, size_t offset) : text_(text), pos_(offset) {}

    const Token& Peek();
    Token Next();
    // Where the next token starts (after spaces).
    size_t Offset();

private:
    Token Scan();

    std::string_view text_;
    size_t pos_;
    bool peeked_ = false;
    Token next_;
};

// A path from the scope's root: `data.items[0].name`, `event.id`, `data["odd key"]`.
struct ScopePath {
    std::vector<nlohmann::json> steps;  // strings are keys, unsigned numbers indexes
};

const nlohmann::json* Resolve(const nlohmann::json& scope, const ScopePath& path);

// "at column N: message" with N = offset + 1.
Status ErrorAt(size_t offset, std::string_view message);
// The offset an ErrorAt status names.
size_t ErrorOffset(const Status& status);
// "found 'x'" / "found the end" for an error message.
std::string Describe(const Token& token);

// Parses the rest of a path whose first identifier `first` was just read.
Result<ScopePath> ParsePathAfter(const Token& first, Lexer* lexer);

// A literal when the token starts one (string, number, true, false, null); the token is consumed.
bool ParseLiteral(Lexer* lexer, nlohmann::json* out);

}  // namespace eventloom::pipeline::expr_internal
