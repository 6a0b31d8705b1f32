#include "rag/chunker.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace eventloom::rag {
namespace {

bool IsSpace(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Bytes of the UTF-8 sequence that starts at `pos`. A byte that does not start a complete
// sequence counts as a sequence of its own, so invalid input still moves one byte at a time.
size_t SequenceLength(std::string_view text, size_t pos) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    size_t length = 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
    }
    if (pos + length > text.size()) return 1;
    for (size_t i = 1; i < length; ++i) {
        if (!IsContinuation(text[pos + i])) return 1;
    }
    return length;
}

// True unless `pos` is strictly inside a well-formed multi-byte sequence.
bool IsBoundary(std::string_view text, size_t pos) {
    if (pos == 0 || pos >= text.size() || !IsContinuation(text[pos])) return true;
    for (size_t back = 1; back <= 3 && back <= pos; ++back) {
        const size_t lead = pos - back;
        if (!IsContinuation(text[lead])) return lead + SequenceLength(text, lead) <= pos;
    }
    return true;
}

size_t NextBoundary(std::string_view text, size_t pos) { return pos + SequenceLength(text, pos); }

size_t PrevBoundary(std::string_view text, size_t pos) {
    do {
        --pos;
    } while (pos > 0 && !IsBoundary(text, pos));
    return pos;
}

// Words of ApproximateTokens: ASCII letters and digits, and every non-ASCII byte (so accented
// and CJK text forms words rather than a run of punctuation).
bool IsWordByte(char c) {
    const auto b = static_cast<unsigned char>(c);
    return b >= 0x80 || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

// The largest k >= 0 with fits(k), or -1 when fits(0) fails. `fits` must hold for every k up
// to some K and fail after it (out-of-range k fails). Probing 1, 2, 4, ... before bisecting
// keeps every probe within twice the answer, so a search never measures text far beyond the
// chunk it is looking for.
template <typename Fits>
ptrdiff_t GallopLast(Fits&& fits) {
    if (!fits(0)) return -1;
    ptrdiff_t good = 0;
    ptrdiff_t bad = 1;
    while (fits(bad)) {
        good = bad;
        bad *= 2;
    }
    while (bad - good > 1) {
        const ptrdiff_t mid = good + (bad - good) / 2;
        if (fits(mid)) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    return good;
}

// Where one word ends: a cut candidate. Ordered by preference.
enum class BreakLevel : uint8_t { kSpace, kSentence, kParagraph, kEnd };

struct Break {
    size_t end = 0;   // the byte after the word
    size_t next = 0;  // the first byte of the next word, or the size of the text
    BreakLevel level = BreakLevel::kSpace;
};

struct Cut {
    size_t end = 0;
    bool inside_word = false;  // the chunk ends inside a word longer than a chunk
};

class Chunker {
public:
    Chunker(std::string_view text, const ChunkOptions& options) : text_(text), options_(options) {}

    std::vector<Chunk> Run();

private:
    void FindBreaks();
    bool EndsSentence(size_t word_begin, size_t word_end) const;

    size_t SkipSpace(size_t pos) const;
    size_t Advance(size_t pos, int characters) const;
    size_t FirstBreakAfter(size_t pos) const;
    bool TokensFit(size_t begin, size_t end) const;
    size_t TokenBoundFrom(size_t begin) const;

    std::optional<Cut> FindCut(size_t begin, size_t covered);
    size_t PickBreak(size_t begin, size_t first, size_t last, size_t limit) const;
    std::optional<Cut> CutInsideWord(size_t begin, size_t covered, size_t first,
                                     size_t char_limit) const;
    size_t NextBegin(size_t begin, const Cut& cut) const;
    std::optional<size_t> CharOverlapStart(size_t begin, const Cut& cut) const;
    std::optional<size_t> TokenOverlapStart(size_t begin, const Cut& cut) const;

    std::string_view text_;
    const ChunkOptions& options_;
    std::vector<Break> breaks_;  // ordered by end (and by next)
    size_t content_end_ = 0;     // the byte after the last word; 0 for a text with no words

    // kTokens: a position known not to fit in a chunk from the current begin (npos: the rest
    // of the text fits), and the byte length of the last chunk, the first guess for the next.
    size_t token_bound_ = std::string_view::npos;
    size_t last_span_ = 0;
};

std::vector<Chunk> Chunker::Run() {
    std::vector<Chunk> chunks;
    FindBreaks();
    last_span_ = static_cast<size_t>(options_.size) * 4;

    // `covered` is the end of the previous chunk: each chunk must reach past it.
    size_t covered = 0;
    size_t begin = SkipSpace(0);
    while (covered < content_end_) {
        std::optional<Cut> cut = FindCut(begin, covered);
        if (!cut) {
            // The overlap leaves no room for the next word: this chunk goes without it.
            begin = SkipSpace(covered);
            cut = FindCut(begin, covered);
        }
        assert(cut.has_value() && cut->end > covered && cut->end > begin);

        chunks.push_back(Chunk{chunks.size(), begin, cut->end,
                               std::string(text_.substr(begin, cut->end - begin))});
        last_span_ = cut->end - begin;
        const size_t next = NextBegin(begin, *cut);
        assert(next > begin);
        covered = cut->end;
        begin = next;
    }
    return chunks;
}

// One pass over the text records every place a chunk may end, with how good a place it is.
void Chunker::FindBreaks() {
    const size_t n = text_.size();
    size_t pos = SkipSpace(0);
    while (pos < n) {
        const size_t word_begin = pos;
        while (pos < n && !IsSpace(text_[pos])) ++pos;
        const size_t word_end = pos;

        int newlines = 0;
        while (pos < n && IsSpace(text_[pos])) {
            if (text_[pos] == '\n') ++newlines;
            ++pos;
        }

        BreakLevel level = BreakLevel::kSpace;
        if (pos == n) {
            level = BreakLevel::kEnd;
        } else if (newlines >= 2) {
            level = BreakLevel::kParagraph;
        } else if (EndsSentence(word_begin, word_end)) {
            level = BreakLevel::kSentence;
        }
        breaks_.push_back(Break{word_end, pos, level});
    }
    content_end_ = breaks_.empty() ? 0 : breaks_.back().end;
}

// "end.", "end?!", and also "end.)" or "end.\"": closing marks may follow the punctuation.
bool Chunker::EndsSentence(size_t word_begin, size_t word_end) const {
    size_t pos = word_end;
    while (pos > word_begin && (text_[pos - 1] == '"' || text_[pos - 1] == '\'' ||
                                text_[pos - 1] == ')' || text_[pos - 1] == ']')) {
        --pos;
    }
    if (pos == word_begin) return false;
    const char c = text_[pos - 1];
    return c == '.' || c == '!' || c == '?';
}

size_t Chunker::SkipSpace(size_t pos) const {
    while (pos < text_.size() && IsSpace(text_[pos])) ++pos;
    return pos;
}

size_t Chunker::Advance(size_t pos, int characters) const {
    for (int i = 0; i < characters && pos < text_.size(); ++i) pos = NextBoundary(text_, pos);
    return pos;
}

size_t Chunker::FirstBreakAfter(size_t pos) const {
    return static_cast<size_t>(
        std::upper_bound(breaks_.begin(), breaks_.end(), pos,
                         [](size_t p, const Break& b) { return p < b.end; }) -
        breaks_.begin());
}

bool Chunker::TokensFit(size_t begin, size_t end) const {
    const std::string_view piece = text_.substr(begin, end - begin);
    const size_t tokens =
        options_.count_tokens ? options_.count_tokens(piece) : ApproximateTokens(piece);
    return tokens <= static_cast<size_t>(options_.size);
}

// Finds a position that does not fit, measuring twice the last chunk's length and doubling.
// Searches from `begin` then never measure past it, even when the next word is huge.
size_t Chunker::TokenBoundFrom(size_t begin) const {
    size_t span = std::max<size_t>(64, 2 * last_span_);
    while (true) {
        if (span >= text_.size() - begin) {
            return TokensFit(begin, text_.size()) ? std::string_view::npos : text_.size();
        }
        size_t probe = begin + span;
        while (!IsBoundary(text_, probe)) --probe;
        if (!TokensFit(begin, probe)) return probe;
        span *= 2;
    }
}

// The cut for a chunk from `begin` that ends past `covered`, or nullopt when that is only
// possible by giving up the overlap.
std::optional<Cut> Chunker::FindCut(size_t begin, size_t covered) {
    const size_t first = FirstBreakAfter(covered);  // breaks before it add nothing new
    size_t last = 0;                                // one past the last break that fits
    size_t limit = 0;                               // how far the chunk may reach
    if (options_.unit == ChunkUnit::kCharacters) {
        limit = Advance(begin, options_.size);
        last = FirstBreakAfter(limit);
    } else {
        token_bound_ = TokenBoundFrom(begin);
        const size_t from = FirstBreakAfter(begin);
        const ptrdiff_t found = GallopLast([&](ptrdiff_t k) {
            const size_t i = from + static_cast<size_t>(k);
            return i < breaks_.size() && breaks_[i].end < token_bound_ &&
                   TokensFit(begin, breaks_[i].end);
        });
        last = from + static_cast<size_t>(found + 1);
        limit = last > 0 ? breaks_[last - 1].end : begin;
    }
    if (last > first) return Cut{breaks_[PickBreak(begin, first, last, limit)].end, false};
    return CutInsideWord(begin, covered, first, limit);
}

// Among breaks_[first, last), the strongest break in the second half of the window, the latest
// of equals; a stronger break early in the window would leave a stub of a chunk. Only when the
// second half holds no break at all (it is inside one long word) does the first half count.
size_t Chunker::PickBreak(size_t begin, size_t first, size_t last, size_t limit) const {
    const size_t half = begin + (limit - begin) / 2;
    std::optional<size_t> best;
    for (size_t i = last; i-- > first && breaks_[i].end >= half;) {
        if (!best || breaks_[i].level > breaks_[*best].level) best = i;
    }
    if (best) return *best;
    for (size_t i = last; i-- > first;) {
        if (!best || breaks_[i].level > breaks_[*best].level) best = i;
    }
    return *best;
}

// No break fits after `covered`: the word there is cut. That is right only for a word longer
// than a chunk. A chunk that starts with overlap gives the overlap up instead (nullopt), unless
// it continues a long word that an earlier chunk already cut.
std::optional<Cut> Chunker::CutInsideWord(size_t begin, size_t covered, size_t first,
                                          size_t char_limit) const {
    const size_t fresh = SkipSpace(covered);
    const bool continuing = covered > 0 && covered < text_.size() && !IsSpace(text_[covered - 1]) &&
                            !IsSpace(text_[covered]);
    if (begin < fresh && !continuing) return std::nullopt;

    if (options_.unit == ChunkUnit::kCharacters) {
        if (char_limit <= fresh) return std::nullopt;
        return Cut{char_limit, true};
    }

    // The furthest character boundary inside the word that still fits.
    const size_t word_end = breaks_[first].end;
    std::vector<size_t> ends;
    auto end_at = [&](size_t k) -> std::optional<size_t> {
        while (ends.size() <= k) {
            const size_t from = ends.empty() ? fresh : ends.back();
            const size_t next = NextBoundary(text_, from);
            if (next >= word_end || next >= token_bound_) return std::nullopt;
            ends.push_back(next);
        }
        return ends[k];
    };
    const ptrdiff_t found = GallopLast([&](ptrdiff_t k) {
        const std::optional<size_t> end = end_at(static_cast<size_t>(k));
        return end && TokensFit(begin, *end);
    });
    if (found >= 0) return Cut{ends[static_cast<size_t>(found)], true};
    if (begin < fresh) return std::nullopt;
    // A single character that counts as more than a chunk: it still has to go somewhere.
    return Cut{NextBoundary(text_, fresh), true};
}

size_t Chunker::NextBegin(size_t begin, const Cut& cut) const {
    const size_t resume = SkipSpace(cut.end);
    if (options_.overlap == 0 || cut.end >= content_end_) return resume;
    const std::optional<size_t> start = options_.unit == ChunkUnit::kCharacters
                                            ? CharOverlapStart(begin, cut)
                                            : TokenOverlapStart(begin, cut);
    return start.value_or(resume);
}

// The overlap starts at the first word within `overlap` characters of the chunk's end, so the
// next chunk does not open on half a word. A chunk no longer than the overlap is not repeated.
std::optional<size_t> Chunker::CharOverlapStart(size_t begin, const Cut& cut) const {
    size_t raw = cut.end;
    for (int i = 0; i < options_.overlap && raw > begin; ++i) raw = PrevBoundary(text_, raw);
    if (raw <= begin) return std::nullopt;

    const auto word = std::lower_bound(breaks_.begin(), breaks_.end(), raw,
                                       [](const Break& b, size_t p) { return b.next < p; });
    if (word != breaks_.end() && word->next < cut.end) return word->next;
    // Inside a long word there is no word start to move to.
    if (cut.inside_word) return raw;
    return std::nullopt;
}

// As CharOverlapStart, counting tokens: the earliest word start whose tail of the chunk fits
// in `overlap` tokens.
std::optional<size_t> Chunker::TokenOverlapStart(size_t begin, const Cut& cut) const {
    auto by_next = [](const Break& b, size_t p) { return b.next < p; };
    const size_t lo = static_cast<size_t>(
        std::lower_bound(breaks_.begin(), breaks_.end(), begin + 1, by_next) - breaks_.begin());
    const size_t hi = static_cast<size_t>(
        std::lower_bound(breaks_.begin(), breaks_.end(), cut.end, by_next) - breaks_.begin());
    const auto overlap = static_cast<size_t>(options_.overlap);
    auto tail_fits = [&](size_t from) {
        const std::string_view tail = text_.substr(from, cut.end - from);
        return (options_.count_tokens ? options_.count_tokens(tail) : ApproximateTokens(tail)) <=
               overlap;
    };

    // Word starts in (begin, cut.end), latest first, then `begin` itself: a chunk that fits in
    // the overlap whole is not repeated.
    const ptrdiff_t words = static_cast<ptrdiff_t>(hi - lo);
    const ptrdiff_t found = GallopLast([&](ptrdiff_t k) {
        if (k > words) return false;
        return tail_fits(k == words ? begin : breaks_[hi - 1 - static_cast<size_t>(k)].next);
    });
    if (found == words) return std::nullopt;
    if (found >= 0) return breaks_[hi - 1 - static_cast<size_t>(found)].next;
    if (!cut.inside_word) return std::nullopt;

    // Inside a long word: character boundaries back from the cut, latest first.
    const size_t word_begin = words > 0 ? breaks_[hi - 1].next : begin;
    std::vector<size_t> starts;
    auto start_at = [&](size_t k) -> std::optional<size_t> {
        while (starts.size() <= k) {
            const size_t from = starts.empty() ? cut.end : starts.back();
            const size_t prev = PrevBoundary(text_, from);
            if (prev <= word_begin) return std::nullopt;
            starts.push_back(prev);
        }
        return starts[k];
    };
    const ptrdiff_t inside = GallopLast([&](ptrdiff_t k) {
        const std::optional<size_t> start = start_at(static_cast<size_t>(k));
        return start && tail_fits(*start);
    });
    if (inside >= 0) return starts[static_cast<size_t>(inside)];
    return std::nullopt;
}

}  // namespace

Status ValidateChunkOptions(const ChunkOptions& options) {
    if (options.size < 1) {
        return InvalidArgumentError("chunk options: size must be at least 1, got " +
                                    std::to_string(options.size));
    }
    if (options.overlap < 0) {
        return InvalidArgumentError("chunk options: overlap must not be negative, got " +
                                    std::to_string(options.overlap));
    }
    if (options.overlap >= options.size) {
        return InvalidArgumentError("chunk options: overlap (" + std::to_string(options.overlap) +
                                    ") must be smaller than size (" + std::to_string(options.size) +
                                    ")");
    }
    return Status::Ok();
}

std::vector<Chunk> ChunkText(std::string_view text, const ChunkOptions& options) {
    // Invalid options could make no progress; give no chunks rather than loop.
    if (!ValidateChunkOptions(options).ok()) return {};
    return Chunker(text, options).Run();
}

size_t ApproximateTokens(std::string_view text) {
    size_t tokens = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        if (IsSpace(text[pos])) {
            ++pos;
        } else if (IsWordByte(text[pos])) {
            size_t characters = 0;
            for (; pos < text.size() && IsWordByte(text[pos]); ++pos) {
                if (!IsContinuation(text[pos])) ++characters;
            }
            // One token per started group of 4 characters: 1..4 -> 1, 5..8 -> 2, ...
            tokens += std::max<size_t>(1, (characters + 3) / 4);
        } else {
            ++tokens;
            ++pos;
        }
    }
    return tokens;
}

}  // namespace eventloom::rag
