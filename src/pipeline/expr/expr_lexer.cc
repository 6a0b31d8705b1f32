// Tokens, paths and literals of expressions (expr_lexer.h).
#include "pipeline/expr/expr_lexer.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>

namespace eventloom::pipeline::expr_internal {

namespace {

using nlohmann::json;

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

const Token& Lexer::Peek() {
    if (!peeked_) {
        next_ = Scan();
        peeked_ = true;
    }
    return next_;
}

Token Lexer::Next() {
    if (peeked_) {
        peeked_ = false;
        return std::move(next_);
    }
    return Scan();
}

size_t Lexer::Offset() { return Peek().offset; }

Token Lexer::Scan() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    Token t;
    t.offset = pos_;
    if (pos_ >= text_.size()) return t;
    const char c = text_[pos_];

    if (IsIdentStart(c)) {
        size_t end = pos_ + 1;
        while (end < text_.size() && IsIdentChar(text_[end])) ++end;
        t.kind = TokenKind::kIdent;
        t.text = std::string(text_.substr(pos_, end - pos_));
        pos_ = end;
        return t;
    }

    const bool negative = c == '-' && pos_ + 1 < text_.size() && IsDigit(text_[pos_ + 1]);
    if (IsDigit(c) || negative) {
        size_t end = pos_ + 1;
        while (end < text_.size() && IsDigit(text_[end])) ++end;
        if (end + 1 < text_.size() && text_[end] == '.' && IsDigit(text_[end + 1])) {
            end += 1;
            while (end < text_.size() && IsDigit(text_[end])) ++end;
        }
        t.kind = TokenKind::kNumber;
        t.text = std::string(text_.substr(pos_, end - pos_));
        pos_ = end;
        return t;
    }

    if (c == '"' || c == '\'') {
        size_t i = pos_ + 1;
        std::string value;
        while (i < text_.size() && text_[i] != c) {
            if (text_[i] == '\\') {
                if (i + 1 >= text_.size()) break;
                const char e = text_[i + 1];
                switch (e) {
                    case 'n':
                        value += '\n';
                        break;
                    case 't':
                        value += '\t';
                        break;
                    case 'r':
                        value += '\r';
                        break;
                    case '\\':
                    case '"':
                    case '\'':
                    case '/':
                        value += e;
                        break;
                    default:
                        t.kind = TokenKind::kError;
                        t.offset = i;
                        t.text = fmt::format("unknown escape '\\{}' in a string", e);
                        pos_ = text_.size();
                        return t;
                }
                i += 2;
                continue;
            }
            value += text_[i++];
        }
        if (i >= text_.size()) {
            t.kind = TokenKind::kError;
            t.text = "unterminated string";
            pos_ = text_.size();
            return t;
        }
        t.kind = TokenKind::kString;
        t.text = std::move(value);
        pos_ = i + 1;
        return t;
    }

    static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "&&", "||", "}}"};
    for (std::string_view op : kTwo) {
        if (text_.substr(pos_, 2) == op) {
            t.kind = TokenKind::kPunct;
            t.text = std::string(op);
            pos_ += 2;
            return t;
        }
    }
    if (std::string_view("|:,.()[]<>!").find(c) != std::string_view::npos) {
        t.kind = TokenKind::kPunct;
        t.text = std::string(1, c);
        ++pos_;
        return t;
    }
    t.kind = TokenKind::kError;
    t.text = fmt::format("unexpected character '{}'", c);
    pos_ = text_.size();
    return t;
}

const json* Resolve(const json& scope, const ScopePath& path) {
    const json* at = &scope;
    for (const json& step : path.steps) {
        if (step.is_string()) {
            if (!at->is_object()) return nullptr;
            auto it = at->find(step.get_ref<const std::string&>());
            if (it == at->end()) return nullptr;
            at = &*it;
        } else {
            const size_t index = step.get<size_t>();
            if (!at->is_array() || index >= at->size()) return nullptr;
            at = &(*at)[index];
        }
    }
    return at;
}

Status ErrorAt(size_t offset, std::string_view message) {
    return InvalidArgumentError(fmt::format("at column {}: {}", offset + 1, message));
}

size_t ErrorOffset(const Status& status) {
    constexpr std::string_view kPrefix = "at column ";
    const std::string& m = status.message();
    if (m.compare(0, kPrefix.size(), kPrefix) != 0) return 0;
    const int column = std::atoi(m.c_str() + kPrefix.size());
    return column > 0 ? static_cast<size_t>(column - 1) : 0;
}

std::string Describe(const Token& token) {
    switch (token.kind) {
        case TokenKind::kEnd:
            return "found the end";
        case TokenKind::kString:
            return fmt::format("found the string \"{}\"", token.text);
        case TokenKind::kError:
            return token.text;
        default:
            return fmt::format("found '{}'", token.text);
    }
}

Result<ScopePath> ParsePathAfter(const Token& first, Lexer* lexer) {
    ScopePath path;
    path.steps.push_back(first.text);
    while (true) {
        const Token& t = lexer->Peek();
        if (t.kind != TokenKind::kPunct || (t.text != "." && t.text != "[")) break;
        const Token punct = lexer->Next();
        Token part = lexer->Next();
        if (punct.text == ".") {
            if (part.kind == TokenKind::kIdent) {
                path.steps.push_back(part.text);
            } else if (part.kind == TokenKind::kNumber && part.text[0] != '-' &&
                       part.text.find('.') == std::string::npos) {
                path.steps.push_back(part.text);  // `data.0` is the key "0"
            } else {
                return ErrorAt(part.offset, "expected a name after '.', " + Describe(part));
            }
            continue;
        }
        if (part.kind == TokenKind::kString) {
            path.steps.push_back(part.text);
        } else if (part.kind == TokenKind::kNumber && part.text[0] != '-' &&
                   part.text.find('.') == std::string::npos && part.text.size() < 10) {
            path.steps.push_back(std::stoul(part.text));
        } else {
            return ErrorAt(part.offset,
                           "expected an index or a quoted key after '[', " + Describe(part));
        }
        Token close = lexer->Next();
        if (close.kind != TokenKind::kPunct || close.text != "]") {
            return ErrorAt(close.offset, "expected ']', " + Describe(close));
        }
    }
    return path;
}

bool ParseLiteral(Lexer* lexer, json* out) {
    const Token& t = lexer->Peek();
    switch (t.kind) {
        case TokenKind::kString:
            *out = t.text;
            break;
        case TokenKind::kNumber:
            try {
                if (t.text.find('.') != std::string::npos) {
                    *out = std::stod(t.text);
                } else {
                    *out = std::stoll(t.text);
                }
            } catch (const std::exception&) {
                *out = json::parse(t.text, nullptr, false);  // beyond int64: a double
                if (out->is_discarded()) *out = nullptr;
            }
            break;
        case TokenKind::kIdent:
            if (t.text == "true") {
                *out = true;
            } else if (t.text == "false") {
                *out = false;
            } else if (t.text == "null") {
                *out = nullptr;
            } else {
                return false;
            }
            break;
        default:
            return false;
    }
    lexer->Next();
    return true;
}

}  // namespace eventloom::pipeline::expr_internal
