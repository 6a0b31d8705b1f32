// Text measures for transform steps: approximate token counts and truncation that never
// splits a UTF-8 code point.
//
// ApproxTokenCount approximates what a model's tokenizer would count, without the model: text
// is pre-tokenized into word pieces the way BPE tokenizers pre-tokenize (runs of letters, runs
// of digits, single punctuation marks; spaces belong to the next piece), and each piece counts
// ceil(length / 4) tokens for letters (a short word is one token, a long one splits) and
// ceil(length / 3) for digits (tokenizers split numbers in groups of up to three). Any byte
// of a multi-byte UTF-8 sequence counts as a letter. Real tokenizers count common English
// words as one token, so this errs on the high side for long words: a budget in approximate
// tokens holds at most that many real ones, near enough for truncating input to a prompt.
//
// Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace eventloom::pipeline {

size_t ApproxTokenCount(std::string_view text);

// The longest prefix of `text` whose ApproxTokenCount is at most `max_tokens`, cut at a piece
// boundary (inside a long piece, at a token's worth of its characters); trailing spaces are
// dropped from a cut text. Never splits a code point.
std::string TruncateToTokens(std::string_view text, size_t max_tokens);

// The first `max_chars` code points of `text`.
std::string TruncateToChars(std::string_view text, size_t max_chars);

}  // namespace eventloom::pipeline
