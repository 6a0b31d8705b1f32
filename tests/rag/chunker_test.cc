#include "rag/chunker.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventloom::rag {
namespace {

bool IsSpace(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

size_t CodePoints(std::string_view text) {
    size_t count = 0;
    for (char c : text) {
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
    }
    return count;
}

size_t Words(std::string_view text) {
    size_t count = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (!IsSpace(text[i]) && (i == 0 || IsSpace(text[i - 1]))) ++count;
    }
    return count;
}

// Strict UTF-8 validation, written independently of the chunker.
bool IsValidUtf8(std::string_view text) {
    size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        size_t length = 0;
        if (c < 0x80) {
            length = 1;
        } else if ((c & 0xE0) == 0xC0) {
            length = 2;
        } else if ((c & 0xF0) == 0xE0) {
            length = 3;
        } else if ((c & 0xF8) == 0xF0) {
            length = 4;
        } else {
            return false;
        }
        if (i + length > text.size()) return false;
        for (size_t k = 1; k < length; ++k) {
            if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
        }
        i += length;
    }
    return true;
}

ChunkOptions Characters(int size, int overlap) {
    ChunkOptions options;
    options.unit = ChunkUnit::kCharacters;
    options.size = size;
    options.overlap = overlap;
    return options;
}

ChunkOptions Tokens(int size, int overlap,
                    std::function<size_t(std::string_view)> count_tokens = {}) {
    ChunkOptions options;
    options.unit = ChunkUnit::kTokens;
    options.size = size;
    options.overlap = overlap;
    options.count_tokens = std::move(count_tokens);
    return options;
}

// The units of `text` as `options` count them.
size_t Units(std::string_view text, const ChunkOptions& options) {
    if (options.unit == ChunkUnit::kCharacters) return CodePoints(text);
    return options.count_tokens ? options.count_tokens(text) : ApproximateTokens(text);
}

std::vector<std::string> Texts(const std::vector<Chunk>& chunks) {
    std::vector<std::string> texts;
    for (const Chunk& chunk : chunks) texts.push_back(chunk.text);
    return texts;
}

// The properties every chunking has, whatever the text and options.
void ExpectWellFormed(std::string_view text, const std::vector<Chunk>& chunks,
                      const ChunkOptions& options) {
    std::vector<bool> covered(text.size(), false);
    for (size_t i = 0; i < chunks.size(); ++i) {
        SCOPED_TRACE("chunk " + std::to_string(i) + ": \"" + chunks[i].text + "\"");
        const Chunk& chunk = chunks[i];
        EXPECT_EQ(chunk.index, i);
        ASSERT_LT(chunk.begin, chunk.end);
        ASSERT_LE(chunk.end, text.size());
        EXPECT_EQ(text.substr(chunk.begin, chunk.end - chunk.begin), chunk.text);
        EXPECT_FALSE(IsSpace(chunk.text.front()));
        EXPECT_FALSE(IsSpace(chunk.text.back()));
        EXPECT_LE(Units(chunk.text, options), static_cast<size_t>(options.size));
        if (i > 0) {
            const Chunk& previous = chunks[i - 1];
            EXPECT_GT(chunk.begin, previous.begin);
            EXPECT_GT(chunk.end, previous.end);
            if (chunk.begin < previous.end) {
                const std::string_view shared =
                    text.substr(chunk.begin, previous.end - chunk.begin);
                EXPECT_LE(Units(shared, options), static_cast<size_t>(options.overlap));
            }
        }
        for (size_t b = chunk.begin; b < chunk.end; ++b) covered[b] = true;
    }
    for (size_t b = 0; b < text.size(); ++b) {
        if (!IsSpace(text[b]) && !covered[b]) {
            ADD_FAILURE() << "byte " << b << " of the text is in no chunk";
            return;
        }
    }
}

// Words of 2-8 letters in sentences of 4-12 words, in paragraphs of 1-4 sentences.
std::string Prose(size_t paragraphs, unsigned seed) {
    std::mt19937 rng(seed);
    std::string text;
    for (size_t p = 0; p < paragraphs; ++p) {
        if (p > 0) text += "\n\n";
        const size_t sentences = 1 + rng() % 4;
        for (size_t s = 0; s < sentences; ++s) {
            if (s > 0) text += ' ';
            const size_t words = 4 + rng() % 9;
            for (size_t w = 0; w < words; ++w) {
                if (w > 0) text += ' ';
                const size_t letters = 2 + rng() % 7;
                for (size_t l = 0; l < letters; ++l) text += static_cast<char>('a' + rng() % 26);
            }
            text += ".!?"[rng() % 3];
        }
    }
    return text;
}

TEST(ValidateChunkOptions, AcceptsOverlapBelowSize) {
    EXPECT_TRUE(ValidateChunkOptions(Characters(1, 0)).ok());
    EXPECT_TRUE(ValidateChunkOptions(Characters(200, 199)).ok());
    EXPECT_TRUE(ValidateChunkOptions(ChunkOptions{}).ok());
}

TEST(ValidateChunkOptions, RejectsBadSizesNamingTheField) {
    struct Case {
        const char* description;
        int size;
        int overlap;
        const char* field;
    };
    const Case cases[] = {
        {"zero size", 0, 0, "size"},
        {"negative size", -5, 0, "size"},
        {"negative overlap", 10, -1, "overlap"},
        {"overlap equal to size", 10, 10, "overlap"},
        {"overlap above size", 10, 11, "overlap"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        const Status status = ValidateChunkOptions(Tokens(c.size, c.overlap));
        EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
        EXPECT_NE(status.message().find(c.field), std::string::npos) << status.message();
    }
}

TEST(ApproximateTokens, CountsWordsPunctuationAndLongWords) {
    struct Case {
        std::string_view text;
        size_t tokens;
    };
    const Case cases[] = {
        {"", 0},      {"   \n\t", 0},       {"word", 1},
        {"hello", 2}, {"hello, world!", 6}, {"internationalization", 5},
        {"a b c", 3}, {"...", 3},           {"日本語", 1},
        {"héllo", 2},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(c.text));
        EXPECT_EQ(ApproximateTokens(c.text), c.tokens);
    }
}

TEST(ChunkText, EmptyTextHasNoChunks) {
    EXPECT_TRUE(ChunkText("", Characters(10, 2)).empty());
    EXPECT_TRUE(ChunkText("", Tokens(10, 2)).empty());
}

TEST(ChunkText, WhitespaceOnlyTextHasNoChunks) {
    const std::string text = "  \n\n\t  \r\n " + std::string(10000, ' ');
    EXPECT_TRUE(ChunkText(text, Characters(10, 9)).empty());
    EXPECT_TRUE(ChunkText(text, Tokens(10, 9)).empty());
}

TEST(ChunkText, ShortTextIsOneTrimmedChunk) {
    const std::string text = "  \n hello world \n\n";
    const std::vector<Chunk> chunks = ChunkText(text, Characters(100, 10));
    ASSERT_EQ(chunks.size(), 1u);
    EXPECT_EQ(chunks[0].text, "hello world");
    EXPECT_EQ(chunks[0].begin, 4u);
    EXPECT_EQ(chunks[0].end, 15u);
}

TEST(ChunkText, CutsAtParagraphBreaks) {
    const std::string first = "The first paragraph talks about cats. It has two sentences.";
    const std::string second = "The second one is about dogs. Dogs bark at the mail carrier.";
    const std::string text = first + "\n\n" + second;
    EXPECT_EQ(Texts(ChunkText(text, Characters(80, 0))), (std::vector<std::string>{first, second}));
}

TEST(ChunkText, PrefersParagraphBreakToLaterSentenceEnd) {
    // The window of 80 characters also holds a sentence end after the paragraph break.
    const std::string first = "Alpha beta gamma delta epsilon zeta eta theta iota kappa.";
    const std::string second = "Lambda mu. Nu xi omicron pi rho sigma tau upsilon phi chi psi.";
    const std::string text = first + "\n  \n" + second;
    const std::vector<Chunk> chunks = ChunkText(text, Characters(80, 0));
    ASSERT_GE(chunks.size(), 2u);
    EXPECT_EQ(chunks[0].text, first);
}

TEST(ChunkText, PrefersSentenceEndToLaterSpace) {
    const std::string text =
        "One two three four five six seven. Eight nine ten eleven twelve thirteen fourteen";
    const std::vector<Chunk> chunks = ChunkText(text, Characters(50, 0));
    ASSERT_EQ(chunks.size(), 2u);
    EXPECT_EQ(chunks[0].text, "One two three four five six seven.");
    EXPECT_EQ(chunks[1].text, "Eight nine ten eleven twelve thirteen fourteen");
}

TEST(ChunkText, SentenceEndMayBeFollowedByClosingMarks) {
    const std::string text =
        "She said \"stop here.\" Then she kept walking along the long road home";
    const std::vector<Chunk> chunks = ChunkText(text, Characters(40, 0));
    ASSERT_GE(chunks.size(), 2u);
    EXPECT_EQ(chunks[0].text, "She said \"stop here.\"");
}

TEST(ChunkText, ProseChunksEndAtSentences) {
    const std::string text = Prose(40, 7);
    const ChunkOptions options = Characters(300, 0);
    const std::vector<Chunk> chunks = ChunkText(text, options);
    ExpectWellFormed(text, chunks, options);
    for (const Chunk& chunk : chunks) {
        SCOPED_TRACE(chunk.text);
        // Sentences are at most 12 words of 8 letters: a window always holds an end of one.
        const char last = chunk.text.back();
        EXPECT_TRUE(last == '.' || last == '!' || last == '?');
    }
}

TEST(ChunkText, WithoutPunctuationCutsAtSpaces) {
    std::string text;
    for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i) + " ";
    const ChunkOptions options = Characters(37, 0);
    const std::vector<Chunk> chunks = ChunkText(text, options);
    ExpectWellFormed(text, chunks, options);
    for (const Chunk& chunk : chunks) {
        SCOPED_TRACE(chunk.text);
        EXPECT_TRUE(chunk.begin == 0 || IsSpace(text[chunk.begin - 1]));
        EXPECT_TRUE(chunk.end == text.size() || IsSpace(text[chunk.end]));
    }
}

TEST(ChunkText, WordsShorterThanSizeAreNeverSplit) {
    // Words up to the chunk size, with a large overlap that often leaves no room for them.
    std::mt19937 rng(3);
    std::string text;
    for (int i = 0; i < 300; ++i) {
        text += std::string(1 + rng() % 20, static_cast<char>('a' + rng() % 26));
        text += ' ';
    }
    for (const ChunkOptions& options : {Characters(20, 15), Tokens(5, 4)}) {
        const std::vector<Chunk> chunks = ChunkText(text, options);
        ExpectWellFormed(text, chunks, options);
        for (const Chunk& chunk : chunks) {
            SCOPED_TRACE(chunk.text);
            EXPECT_TRUE(chunk.begin == 0 || IsSpace(text[chunk.begin - 1]));
            EXPECT_TRUE(chunk.end == text.size() || IsSpace(text[chunk.end]));
        }
    }
}

TEST(ChunkText, LongWordIsSplitIntoFullChunks) {
    const std::string text = "short " + std::string(250, 'x') + " tail";
    const ChunkOptions options = Characters(100, 0);
    const std::vector<Chunk> chunks = ChunkText(text, options);
    ExpectWellFormed(text, chunks, options);
    EXPECT_EQ(Texts(chunks),
              (std::vector<std::string>{"short", std::string(100, 'x'), std::string(100, 'x'),
                                        std::string(50, 'x') + " tail"}));
}

TEST(ChunkText, LongWordIsSplitInTokens) {
    // One token per character: the word must be cut inside.
    auto per_character = [](std::string_view text) { return CodePoints(text); };
    const std::string text = "aa " + std::string(50, 'z') + " bb";
    const ChunkOptions options = Tokens(8, 2, per_character);
    const std::vector<Chunk> chunks = ChunkText(text, options);
    ExpectWellFormed(text, chunks, options);
    EXPECT_GE(chunks.size(), 7u);
}

TEST(ChunkText, OffsetsReconstructTheText) {
    const std::string text = Prose(30, 11);
    const ChunkOptions options = Characters(120, 0);
    const std::vector<Chunk> chunks = ChunkText(text, options);
    ASSERT_FALSE(chunks.empty());

    // Without overlap, the chunks and the whitespace between them are the whole text.
    std::string rebuilt(text.substr(0, chunks[0].begin));
    for (size_t i = 0; i < chunks.size(); ++i) {
        EXPECT_EQ(text.substr(chunks[i].begin, chunks[i].end - chunks[i].begin), chunks[i].text);
        rebuilt += chunks[i].text;
        const size_t gap_end = i + 1 < chunks.size() ? chunks[i + 1].begin : text.size();
        const std::string_view gap =
            std::string_view(text).substr(chunks[i].end, gap_end - chunks[i].end);
        for (char c : gap) EXPECT_TRUE(IsSpace(c));
        rebuilt += gap;
    }
    EXPECT_EQ(rebuilt, text);
}

TEST(ChunkText, OverlapRepeatsTheEndOfThePreviousChunk) {
    const std::string text = Prose(20, 5);
    const ChunkOptions options = Characters(200, 50);
    const std::vector<Chunk> chunks = ChunkText(text, options);
    ExpectWellFormed(text, chunks, options);
    ASSERT_GE(chunks.size(), 3u);
    for (size_t i = 1; i < chunks.size(); ++i) {
        SCOPED_TRACE(chunks[i].text);
        ASSERT_LT(chunks[i].begin, chunks[i - 1].end);
        // At most 50 characters, and more than the longest word (8) plus a space.
        EXPECT_GT(chunks[i - 1].end - chunks[i].begin, 9u);
        // The overlap starts at a word.
        EXPECT_TRUE(IsSpace(text[chunks[i].begin - 1]));
    }
}

TEST(ChunkText, OverlapInTokensIsBounded) {
    // Every chunk ends in a word of at most 8 letters and a mark: 3 tokens.
    const std::string text = Prose(30, 9);
    for (int overlap : {5, 20}) {
        SCOPED_TRACE("overlap " + std::to_string(overlap));
        const ChunkOptions options = Tokens(40, overlap);
        const std::vector<Chunk> chunks = ChunkText(text, options);
        ExpectWellFormed(text, chunks, options);
        size_t overlapping = 0;
        for (size_t i = 1; i < chunks.size(); ++i) {
            if (chunks[i].begin < chunks[i - 1].end) ++overlapping;
        }
        EXPECT_EQ(overlapping, chunks.size() - 1);
    }
}

TEST(ChunkText, CountsCharactersNotBytes) {
    const std::string text = "日本語日本語";  // 6 characters, 18 bytes
    EXPECT_EQ(Texts(ChunkText(text, Characters(6, 0))), std::vector<std::string>{text});
    EXPECT_EQ(Texts(ChunkText(text, Characters(4, 0))),
              (std::vector<std::string>{"日本語日", "本語"}));
}

TEST(ChunkText, NeverSplitsAMultiByteCharacter) {
    std::string text;
    for (int i = 0; i < 40; ++i) {
        text +=
            "héllo wörld 日本語のテキスト 🙂🙂🙂 ñandú. Ελληνικά "
            "κείμενα!\n\n";
    }
    text += std::string("長い") + std::string(10, 'x') + "🙂日本語日本語日本語日本語";
    auto per_byte = [](std::string_view t) { return t.size(); };
    const ChunkOptions all_options[] = {
        Characters(5, 0), Characters(7, 3), Characters(30, 10),     Characters(3, 2),
        Tokens(4, 1),     Tokens(20, 5),    Tokens(6, 2, per_byte), Tokens(11, 7, per_byte),
    };
    for (const ChunkOptions& options : all_options) {
        SCOPED_TRACE("size " + std::to_string(options.size) + " overlap " +
                     std::to_string(options.overlap));
        const std::vector<Chunk> chunks = ChunkText(text, options);
        ExpectWellFormed(text, chunks, options);
        for (const Chunk& chunk : chunks) EXPECT_TRUE(IsValidUtf8(chunk.text)) << chunk.text;
    }
}

TEST(ChunkText, KeepsInvalidUtf8AsItIs) {
    const std::string text = "ab\xff\xfe cd \xe6\x97 ef\x80\x80\x80\x80gh \xf0\x9f\x99\x82 end";
    const size_t emoji = text.find("\xf0\x9f\x99\x82");
    auto inside_emoji = [emoji](size_t pos) { return pos > emoji && pos < emoji + 4; };
    for (const ChunkOptions& options : {Characters(3, 1), Characters(1, 0), Tokens(2, 1)}) {
        const std::vector<Chunk> chunks = ChunkText(text, options);
        ExpectWellFormed(text, chunks, options);
        for (const Chunk& chunk : chunks) {
            EXPECT_FALSE(inside_emoji(chunk.begin));
            EXPECT_FALSE(inside_emoji(chunk.end));
        }
    }
}

TEST(ChunkText, MaximalOverlapStillMakesProgress) {
    const std::string prose = Prose(10, 13);
    const std::string giant(5000, 'g');
    for (const std::string& text : {prose, giant, prose + " " + giant + " " + prose}) {
        for (const ChunkOptions& options :
             {Characters(10, 9), Characters(1, 0), Tokens(3, 2), Tokens(1, 0)}) {
            const std::vector<Chunk> chunks = ChunkText(text, options);
            ExpectWellFormed(text, chunks, options);
            EXPECT_LE(chunks.size(), CodePoints(text));
        }
    }
}

TEST(ChunkText, GiantWordIsCutIntoFullChunks) {
    const std::string text(100000, 'a');
    const ChunkOptions options = Characters(1000, 100);
    const std::vector<Chunk> chunks = ChunkText(text, options);
    ExpectWellFormed(text, chunks, options);
    for (size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_EQ(chunks[i].text.size(), 1000u);
}

TEST(ChunkText, TokenChunksRespectTheCounter) {
    const std::string text = Prose(50, 17);
    auto words = [](std::string_view t) { return Words(t); };
    auto bytes_plus_bos = [](std::string_view t) { return t.size() / 3 + 1; };
    struct Case {
        const char* description;
        ChunkOptions options;
    };
    const Case cases[] = {
        {"approximate", Tokens(64, 16)},
        {"words", Tokens(25, 5, words)},
        {"bytes with a start token", Tokens(50, 10, bytes_plus_bos)},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        const std::vector<Chunk> chunks = ChunkText(text, c.options);
        ExpectWellFormed(text, chunks, c.options);
        ASSERT_GE(chunks.size(), 3u);
        // Chunks are close to full: a cut gives up at most half the window.
        for (size_t i = 0; i + 1 < chunks.size(); ++i) {
            EXPECT_GE(Units(chunks[i].text, c.options) * 4, static_cast<size_t>(c.options.size))
                << chunks[i].text;
        }
    }
}

TEST(ChunkText, WordCounterGivesExactWordWindows) {
    std::string text;
    for (int i = 0; i < 100; ++i) text += "w" + std::to_string(i) + " ";
    auto words = [](std::string_view t) { return Words(t); };
    const std::vector<Chunk> chunks = ChunkText(text, Tokens(10, 3, words));
    ASSERT_EQ(chunks.size(), 14u);
    EXPECT_EQ(chunks[0].text, "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9");
    EXPECT_EQ(chunks[1].text, "w7 w8 w9 w10 w11 w12 w13 w14 w15 w16");
}

TEST(ChunkText, TokenCountingStaysNearLinear) {
    // Measuring the whole remaining text for every chunk would count about
    // text.size() * chunks bytes; counting only candidate chunks stays near the text size.
    const std::string text = Prose(2000, 23);
    size_t counted = 0;
    auto counting = [&counted](std::string_view t) {
        counted += t.size();
        return ApproximateTokens(t);
    };
    const std::vector<Chunk> chunks = ChunkText(text, Tokens(100, 20, counting));
    ASSERT_GT(chunks.size(), 100u);
    EXPECT_LT(counted, 40 * text.size());
}

TEST(ChunkText, RandomTextsAreWellFormed) {
    const std::string_view pieces[] = {
        "a",         "word",     "lengthy",
        "é",         "日本",     "🙂",
        ".",         "!",        "?",
        ",",         " ",        " ",
        " ",         "\n",       "\n\n",
        "\t",        "\"",       ")",
        "\xff",      "\xe6\x97", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "  \n  \n  "};
    std::mt19937 rng(29);
    for (int round = 0; round < 300; ++round) {
        std::string text;
        const size_t length = rng() % 120;
        for (size_t i = 0; i < length; ++i) text += pieces[rng() % std::size(pieces)];

        const int size = 1 + static_cast<int>(rng() % 30);
        const int overlap = static_cast<int>(rng() % static_cast<unsigned>(size));
        const ChunkOptions options =
            round % 2 == 0 ? Characters(size, overlap) : Tokens(size, overlap);
        SCOPED_TRACE("round " + std::to_string(round) + " size " + std::to_string(size) +
                     " overlap " + std::to_string(overlap));
        ExpectWellFormed(text, ChunkText(text, options), options);
        if (HasFatalFailure() || HasNonfatalFailure()) return;
    }
}

}  // namespace
}  // namespace eventloom::rag
