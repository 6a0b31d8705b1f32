#include "event/base64.h"

#include <array>
#include <cstdint>

namespace eventloom {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t kInvalid = 0xFF;

constexpr std::array<uint8_t, 256> MakeDecodeTable() {
    std::array<uint8_t, 256> table{};
    for (auto& entry : table) entry = kInvalid;
    for (uint8_t i = 0; i < 64; ++i) table[static_cast<uint8_t>(kAlphabet[i])] = i;
    return table;
}

constexpr std::array<uint8_t, 256> kDecodeTable = MakeDecodeTable();

Status InvalidAt(size_t offset, std::string_view why) {
    return InvalidArgumentError("invalid base64 at offset " + std::to_string(offset) + ": " +
                                std::string(why));
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const uint32_t group = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
        out.push_back(kAlphabet[(group >> 18) & 0x3F]);
        out.push_back(kAlphabet[(group >> 12) & 0x3F]);
        out.push_back(kAlphabet[(group >> 6) & 0x3F]);
        out.push_back(kAlphabet[group & 0x3F]);
    }

    // One or two bytes left: two or three characters, then padding.
    const size_t left = bytes.size() - i;
    if (left > 0) {
        uint32_t group = uint32_t{p[i]} << 16;
        if (left == 2) group |= uint32_t{p[i + 1]} << 8;
        out.push_back(kAlphabet[(group >> 18) & 0x3F]);
        out.push_back(kAlphabet[(group >> 12) & 0x3F]);
        out.push_back(left == 2 ? kAlphabet[(group >> 6) & 0x3F] : '=');
        out.push_back('=');
    }
    return out;
}

Result<std::string> Base64Decode(std::string_view text) {
    // Split off the padding.
    size_t body = text.size();
    while (body > 0 && text[body - 1] == '=') --body;
    const size_t padding = text.size() - body;

    std::string out;
    out.reserve(body / 4 * 3 + 2);
    uint32_t bits = 0;
    int bit_count = 0;
    for (size_t i = 0; i < body; ++i) {
        const uint8_t value = kDecodeTable[static_cast<uint8_t>(text[i])];
        if (value == kInvalid) return InvalidAt(i, "not a base64 character");
        bits = (bits << 6) | value;
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            out.push_back(static_cast<char>((bits >> bit_count) & 0xFF));
        }
    }

    // With padding the text comes in whole quads; without, a last quad of one character
    // cannot hold a byte.
    if (padding > 2) return InvalidAt(body, "too much padding");
    if (padding > 0 && text.size() % 4 != 0) return InvalidAt(body, "incomplete padding");
    if (body % 4 == 1) return InvalidAt(body - 1, "truncated: a lone character cannot be a byte");
    if ((bits & ((1u << bit_count) - 1)) != 0) {
        return InvalidAt(body - 1, "non-zero bits after the last byte");
    }
    return out;
}

}  // namespace eventloom
