// TextOutput: turns the byte pieces of generated tokens into the text a caller may see.
//
// Two things stand between a token's bytes and the caller:
//   - a token may end inside a multi-byte UTF-8 character (byte-fallback tokens): those bytes
//     wait for the rest of the character; bytes that form no character become U+FFFD, so the
//     text released is always valid UTF-8;
//   - text that could be the start of a stop sequence is held back until it is known not to
//     be one; when a stop sequence appears, the text ends just before it.
//
// Not thread-safe: one per sequence.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace eventloom::llm {

class TextOutput {
public:
    explicit TextOutput(std::vector<std::string> stop = {});

    // Adds a token's bytes. Returns the text newly released to the caller (possibly empty).
    std::string Add(std::string_view bytes);
    // True once a stop sequence was produced; the text then ends before it and Add releases
    // nothing more.
    bool stopped() const { return stopped_; }
    // Releases whatever is still held back (the generation ended without a stop sequence).
    // Incomplete UTF-8 at the very end is dropped.
    std::string Finish();
    // Everything released so far.
    const std::string& text() const { return text_; }

private:
    std::vector<std::string> stop_;
    size_t max_stop_ = 0;
    std::string pending_;  // complete characters not yet released, and an incomplete tail
    std::string text_;
    bool stopped_ = false;
};

// `s` with every byte that is not part of a well-formed UTF-8 character replaced by U+FFFD.
std::string ToValidUtf8(std::string_view s);

// The length of the longest prefix of `s` made of complete UTF-8 characters. Invalid bytes
// count as complete (they are passed through, not held forever).
size_t CompleteUtf8Prefix(std::string_view s);

}  // namespace eventloom::llm
