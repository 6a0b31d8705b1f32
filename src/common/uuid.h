// UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a counter and random bits. Ids made by
// one process sort by creation time, and stay unique across processes through the random bits.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace eventloom {

using Uuid = std::array<uint8_t, 16>;

// A new UUIDv7. Thread-safe; monotonic within a process even when the clock stands still.
Uuid NewUuidV7();

// The canonical 36-character lowercase text form.
std::string UuidToString(const Uuid& id);

// A new UUIDv7 in text form: the default CloudEvents `id` of an event.
inline std::string NewEventId() { return UuidToString(NewUuidV7()); }

}  // namespace eventloom
