#include "common/uuid.h"

#include <chrono>
#include <mutex>
#include <random>

namespace eventloom {
namespace {

struct State {
    std::mutex mu;
    uint64_t last_ms = 0;
    uint32_t counter = 0;  // 12 bits, the rand_a field, seeded randomly each new millisecond
    std::mt19937_64 rng{std::random_device{}()};
};

State& GlobalState() {
    static State state;
    return state;
}

}  // namespace

Uuid NewUuidV7() {
    State& s = GlobalState();
    uint64_t now_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
    uint64_t ms;
    uint32_t counter;
    uint64_t random;
    {
        std::lock_guard<std::mutex> lock(s.mu);
        if (now_ms > s.last_ms) {
            s.last_ms = now_ms;
            s.counter = static_cast<uint32_t>(s.rng() & 0x3FF);  // leave room to count up
        } else if (++s.counter > 0xFFF) {
            // 4096 ids in one millisecond: borrow the next millisecond to stay monotonic.
            ++s.last_ms;
            s.counter = 0;
        }
        ms = s.last_ms;
        counter = s.counter;
        random = s.rng();
    }

    Uuid id{};
    for (int i = 0; i < 6; ++i) id[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
    id[6] = static_cast<uint8_t>(0x70 | ((counter >> 8) & 0x0F));
    id[7] = static_cast<uint8_t>(counter & 0xFF);
    id[8] = static_cast<uint8_t>(0x80 | ((random >> 56) & 0x3F));
    for (int i = 9; i < 16; ++i) id[i] = static_cast<uint8_t>(random >> (8 * (15 - i)));
    return id;
}

std::string UuidToString(const Uuid& id) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(kHex[id[i] >> 4]);
        out.push_back(kHex[id[i] & 0x0F]);
    }
    return out;
}

}  // namespace eventloom
