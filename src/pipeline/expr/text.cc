// Approximate token counts and truncation (text.h).
#include "pipeline/expr/text.h"

#include <cctype>
#include <functional>

#include "pipeline/expr/scope.h"

namespace eventloom::pipeline {

namespace {

enum class CharClass { kSpace, kLetter, kDigit, kPunct };

CharClass Classify(unsigned char c) {
    if (c >= 0x80) return CharClass::kLetter;  // a byte of a non-ASCII code point
    if (std::isspace(c)) return CharClass::kSpace;
    if (std::isalpha(c)) return CharClass::kLetter;
    if (std::isdigit(c)) return CharClass::kDigit;
    return CharClass::kPunct;
}

// Calls piece(begin, end, tokens) for every piece of `text`, in order, until it returns
// false. Spaces before a piece are part of it; bytes of one code point stay in one piece.
void ForEachPiece(std::string_view text, const std::function<bool(size_t, size_t, size_t)>& piece) {
    size_t i = 0;
    while (i < text.size()) {
        const size_t begin = i;
        while (i < text.size() && Classify(text[i]) == CharClass::kSpace) ++i;
        if (i == text.size()) {
            piece(begin, i, 0);
            return;
        }
        const CharClass kind = Classify(text[i]);
        size_t tokens = 1;
        if (kind == CharClass::kPunct) {
            ++i;
        } else {
            size_t chars = 0;
            while (i < text.size() && Classify(text[i]) == kind) {
                i += Utf8Prefix(text.substr(i), 1).size();
                ++chars;
            }
            const size_t per_token = kind == CharClass::kDigit ? 3 : 4;
            tokens = (chars + per_token - 1) / per_token;
        }
        if (!piece(begin, i, tokens)) return;
    }
}

}  // namespace

size_t ApproxTokenCount(std::string_view text) {
    size_t total = 0;
    ForEachPiece(text, [&](size_t, size_t, size_t tokens) {
        total += tokens;
        return true;
    });
    return total;
}

std::string TruncateToTokens(std::string_view text, size_t max_tokens) {
    size_t used = 0;
    size_t cut = text.size();
    ForEachPiece(text, [&](size_t begin, size_t end, size_t tokens) {
        if (used + tokens <= max_tokens) {
            used += tokens;
            return true;
        }
        // Keep a token's worth of characters of this piece for each token left.
        const size_t left = max_tokens - used;
        size_t start = begin;
        while (start < end && Classify(text[start]) == CharClass::kSpace) ++start;
        const bool digits = Classify(text[start]) == CharClass::kDigit;
        const size_t keep_chars = left * (digits ? 3 : 4);
        cut = keep_chars == 0
                  ? begin
                  : start + Utf8Prefix(text.substr(start, end - start), keep_chars).size();
        return false;
    });
    if (cut == text.size()) return std::string(text);
    std::string_view kept = text.substr(0, cut);
    while (!kept.empty() && Classify(kept.back()) == CharClass::kSpace) kept.remove_suffix(1);
    return std::string(kept);
}

std::string TruncateToChars(std::string_view text, size_t max_chars) {
    return std::string(Utf8Prefix(text, max_chars));
}

}  // namespace eventloom::pipeline
