// CRC32C (Castagnoli), the checksum that frames every log record. Uses the SSE4.2 crc32
// instruction where the CPU has it and a table otherwise; both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace eventloom::crc32c {

// Extends `crc` (the CRC32C of some earlier bytes, or 0) with `n` more bytes.
uint32_t Extend(uint32_t crc, const void* data, size_t n);

inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }
inline uint32_t Value(std::string_view s) { return Extend(0, s.data(), s.size()); }

// The table-driven path alone, whatever the CPU has; for tests and comparison.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);

// True when the hardware path is in use.
bool HardwareAccelerated();

}  // namespace eventloom::crc32c
