// Splitting documents into chunks for the live index (docs/rag.md).
//
// A chunk is at most `size` units (characters or tokens) long and starts `overlap` units
// before the previous one ended. Cuts prefer, in order: a paragraph break (a blank line), the
// end of a sentence (. ! ? followed by space), any whitespace; only a single unit longer
// than `size` (a long word) is cut mid-way, and never inside a UTF-8 sequence. Whitespace at
// the edges of a chunk is trimmed; chunks with no text are dropped.
//
// In detail:
// - Characters are Unicode code points (a byte that is not part of a well-formed sequence
//   counts as one); whitespace is ASCII whitespace; a sentence end may be followed by closing
//   marks (`end.")`).
// - A preferred break is taken only in the second half of the window a chunk may fill, so a
//   paragraph break near the start does not leave a stub of a chunk; the first half is used
//   only when the second half holds no break (it is inside one long word).
// - The overlap starts at a word (except inside a long word), so it may be shorter than
//   `overlap`, never longer. A chunk that ends at a break and is no longer than `overlap`, or
//   whose overlap leaves no room for the next word, is followed without overlap.
// - Every chunk starts after the previous one starts and ends after it ends, so the number of
//   chunks is at most the number of units in the text.
// - kTokens measures only candidate chunks with count_tokens (never the whole remaining text)
//   and keeps a cut only if count_tokens(chunk.text) <= size. A count_tokens that grows with
//   the text gives the longest such chunks; a single character that alone counts more than
//   `size` becomes a chunk of its own.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::rag {

enum class ChunkUnit { kCharacters, kTokens };

struct ChunkOptions {
    ChunkUnit unit = ChunkUnit::kTokens;
    int size = 200;    // units per chunk
    int overlap = 40;  // units shared with the previous chunk; < size
    // kTokens: counts the tokens of a piece of text. Empty: ApproximateTokens.
    std::function<size_t(std::string_view)> count_tokens;
};

struct Chunk {
    size_t index = 0;  // 0, 1, ... within the document
    size_t begin = 0;  // byte offsets of the chunk's text in the document
    size_t end = 0;
    std::string text;
};

// InvalidArgument for size < 1, overlap < 0 or overlap >= size.
Status ValidateChunkOptions(const ChunkOptions& options);

// The chunks of `text`, in order. Invalid UTF-8 is kept as it is (cuts still avoid splitting a
// multi-byte sequence). `options` must be valid; invalid options give no chunks.
// Thread-safe: no shared state (count_tokens is called from the calling thread only).
std::vector<Chunk> ChunkText(std::string_view text, const ChunkOptions& options);

// A model-free token estimate: words and punctuation marks count one each, and a word longer
// than 4 characters one more per further 4 (close to what BPE tokenizers give for English).
// Words are runs of ASCII letters and digits and of non-ASCII characters, so it undercounts
// scripts written without spaces (CJK); pass a real count_tokens for those.
size_t ApproximateTokens(std::string_view text);

}  // namespace eventloom::rag
