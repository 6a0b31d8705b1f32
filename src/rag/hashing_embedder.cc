#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rag/embedder.h"

namespace eventloom::rag {
namespace {

constexpr int kMinDimension = 8;
constexpr int kMaxDimension = 8192;
constexpr int kMaxWordNgram = 8;
constexpr int kMaxCharNgram = 16;

// Character n-grams are many (about three per character at 3-5) and each says less than a
// whole word, so they count half as much as a word n-gram.
constexpr float kWordWeight = 1.0f;
constexpr float kCharWeight = 0.5f;

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

// MurmurHash3's 64-bit finaliser: spreads FNV-1a's weak low bits, which pick the bucket.
uint64_t Mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

// FNV-1a over the bytes of a feature, fed piece by piece so that no feature is ever built
// as a string.
class FeatureHash {
public:
    explicit FeatureHash(uint64_t basis) : state_(basis) {}

    void Add(char c) {
        state_ ^= static_cast<unsigned char>(c);
        state_ *= kFnvPrime;
    }
    void Add(std::string_view bytes) {
        for (char c : bytes) Add(c);
    }
    uint64_t Finish() const { return Mix64(state_); }

private:
    uint64_t state_;
};

// Word n-grams and character n-grams start from different states, so a word and a character
// n-gram with the same spelling are different features; the seed changes both.
uint64_t Basis(uint32_t seed, uint64_t family) {
    return kFnvOffset ^ Mix64((static_cast<uint64_t>(seed) << 8) | family);
}

bool IsWordByte(unsigned char b) {
    return b >= 0x80 || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z');
}

struct Feature {
    uint64_t hash;
    float weight;
};

// Buffers reused across the texts of one Embed call.
struct Scratch {
    std::string lowered;
    std::vector<std::string_view> words;
    std::vector<size_t> characters;  // offsets of a word's code points, and its end
    std::vector<Feature> features;
};

class HashingEmbedder final : public Embedder {
public:
    explicit HashingEmbedder(const HashingEmbedderOptions& options)
        : options_(options),
          word_basis_(Basis(options.seed, 1)),
          char_basis_(Basis(options.seed, 2)) {
        if (options_.char_ngram_min == 0) options_.char_ngram_max = 0;
    }

    int dimension() const override { return options_.dimension; }

    std::string fingerprint() const override {
        return "hashing/" + std::to_string(options_.dimension) + "/w" +
               std::to_string(options_.word_ngram_min) + "-" +
               std::to_string(options_.word_ngram_max) + "/c" +
               std::to_string(options_.char_ngram_min) + "-" +
               std::to_string(options_.char_ngram_max) + "/seed" + std::to_string(options_.seed);
    }

    Result<std::vector<Vector>> Embed(std::span<const std::string> texts) override {
        std::vector<Vector> vectors;
        vectors.reserve(texts.size());
        Scratch scratch;
        for (const std::string& text : texts) vectors.push_back(EmbedOne(text, scratch));
        return vectors;
    }

private:
    Vector EmbedOne(std::string_view text, Scratch& scratch) const;
    void AddWordNgrams(Scratch& scratch) const;
    void AddCharNgrams(std::string_view word, Scratch& scratch) const;

    HashingEmbedderOptions options_;
    uint64_t word_basis_;
    uint64_t char_basis_;
};

Vector HashingEmbedder::EmbedOne(std::string_view text, Scratch& scratch) const {
    // Lowercase ASCII only: other scripts keep their bytes, which is deterministic everywhere.
    scratch.lowered.assign(text);
    for (char& c : scratch.lowered) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }

    scratch.words.clear();
    const std::string_view lowered = scratch.lowered;
    for (size_t pos = 0; pos < lowered.size();) {
        if (!IsWordByte(static_cast<unsigned char>(lowered[pos]))) {
            ++pos;
            continue;
        }
        const size_t begin = pos;
        while (pos < lowered.size() && IsWordByte(static_cast<unsigned char>(lowered[pos]))) {
            ++pos;
        }
        scratch.words.push_back(lowered.substr(begin, pos - begin));
    }

    scratch.features.clear();
    AddWordNgrams(scratch);
    if (options_.char_ngram_min > 0) {
        for (std::string_view word : scratch.words) AddCharNgrams(word, scratch);
    }

    // Equal hashes are the same feature: count each once, with weight 1 + ln(count), so that a
    // word repeated ten times does not drown the rest of the text.
    std::vector<Feature>& features = scratch.features;
    std::sort(features.begin(), features.end(),
              [](const Feature& a, const Feature& b) { return a.hash < b.hash; });
    Vector vector(static_cast<size_t>(options_.dimension), 0.0f);
    const auto dimension = static_cast<uint64_t>(options_.dimension);
    for (size_t i = 0; i < features.size();) {
        size_t j = i + 1;
        while (j < features.size() && features[j].hash == features[i].hash) ++j;
        const uint64_t hash = features[i].hash;
        const float value = features[i].weight * (1.0f + std::log(static_cast<float>(j - i)));
        // The sign comes from the top bit, the bucket from the low ones: independent after Mix64.
        vector[hash % dimension] += (hash >> 63) != 0 ? -value : value;
        i = j;
    }

    double norm = 0.0;
    for (float x : vector) norm += static_cast<double>(x) * x;
    if (norm > 0.0) {
        const auto scale = static_cast<float>(1.0 / std::sqrt(norm));
        for (float& x : vector) x *= scale;
    }
    return vector;
}

// Word n-grams are hashed as the words joined by single spaces.
void HashingEmbedder::AddWordNgrams(Scratch& scratch) const {
    const std::vector<std::string_view>& words = scratch.words;
    for (size_t first = 0; first < words.size(); ++first) {
        FeatureHash hash(word_basis_);
        const auto min_n = static_cast<size_t>(options_.word_ngram_min);
        const auto max_n = static_cast<size_t>(options_.word_ngram_max);
        for (size_t n = 1; n <= max_n && first + n <= words.size(); ++n) {
            if (n > 1) hash.Add(' ');
            hash.Add(words[first + n - 1]);
            if (n >= min_n) {
                scratch.features.push_back(Feature{hash.Finish(), kWordWeight});
            }
        }
    }
}

// Character n-grams over the code points of "<word>": the marks let a prefix or suffix differ
// from the same letters inside a word. A mark alone is no feature (it is in every word).
void HashingEmbedder::AddCharNgrams(std::string_view word, Scratch& scratch) const {
    // Stray continuation bytes (invalid UTF-8) stay with the character before them.
    std::vector<size_t>& starts = scratch.characters;
    starts.assign(1, 0);
    for (size_t pos = 1; pos < word.size(); ++pos) {
        if ((static_cast<unsigned char>(word[pos]) & 0xC0) != 0x80) starts.push_back(pos);
    }
    starts.push_back(word.size());

    // Units 0 and last are the marks; unit u in between is code point u - 1.
    const size_t units = starts.size() + 1;
    auto add_unit = [&](FeatureHash& hash, size_t u) {
        if (u == 0) {
            hash.Add('<');
        } else if (u == units - 1) {
            hash.Add('>');
        } else {
            hash.Add(word.substr(starts[u - 1], starts[u] - starts[u - 1]));
        }
    };
    const auto min_n = static_cast<size_t>(options_.char_ngram_min);
    const auto max_n = static_cast<size_t>(options_.char_ngram_max);
    for (size_t first = 0; first < units; ++first) {
        FeatureHash hash(char_basis_);
        for (size_t n = 1; n <= max_n && first + n <= units; ++n) {
            add_unit(hash, first + n - 1);
            const bool mark_alone = n == 1 && (first == 0 || first == units - 1);
            if (n >= min_n && !mark_alone) {
                scratch.features.push_back(Feature{hash.Finish(), kCharWeight});
            }
        }
    }
}

}  // namespace

Result<std::unique_ptr<Embedder>> MakeHashingEmbedder(HashingEmbedderOptions options) {
    auto invalid = [](const std::string& what) {
        return InvalidArgumentError("hashing embedder: " + what);
    };
    if (options.dimension < kMinDimension || options.dimension > kMaxDimension) {
        return invalid("dimension must be in " + std::to_string(kMinDimension) + ".." +
                       std::to_string(kMaxDimension) + ", got " +
                       std::to_string(options.dimension));
    }
    if (options.word_ngram_min < 1 || options.word_ngram_max < options.word_ngram_min ||
        options.word_ngram_max > kMaxWordNgram) {
        return invalid("word_ngram_min..word_ngram_max must be a range within 1.." +
                       std::to_string(kMaxWordNgram) + ", got " +
                       std::to_string(options.word_ngram_min) + ".." +
                       std::to_string(options.word_ngram_max));
    }
    if (options.char_ngram_min < 0) {
        return invalid("char_ngram_min must be 0 (off) or positive, got " +
                       std::to_string(options.char_ngram_min));
    }
    if (options.char_ngram_min > 0 && (options.char_ngram_max < options.char_ngram_min ||
                                       options.char_ngram_max > kMaxCharNgram)) {
        return invalid("char_ngram_min..char_ngram_max must be a range within 1.." +
                       std::to_string(kMaxCharNgram) + ", got " +
                       std::to_string(options.char_ngram_min) + ".." +
                       std::to_string(options.char_ngram_max));
    }
    return std::unique_ptr<Embedder>(std::make_unique<HashingEmbedder>(options));
}

}  // namespace eventloom::rag
