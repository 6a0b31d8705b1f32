// Strong types for the numbers the log is addressed by, so an offset can never be passed where a
// partition or a count was meant. Each is a thin wrapper with explicit construction and
// comparison; arithmetic is limited to what the concept allows.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace eventloom {

template <typename Tag, typename Rep>
class StrongInt {
public:
    using rep = Rep;
    constexpr StrongInt() = default;
    constexpr explicit StrongInt(Rep value) : value_(value) {}

    constexpr Rep value() const { return value_; }
    constexpr auto operator<=>(const StrongInt&) const = default;

private:
    Rep value_{};
};

template <typename Tag, typename Rep>
std::ostream& operator<<(std::ostream& os, StrongInt<Tag, Rep> v) {
    return os << v.value();
}

// The position of a record in one partition: 0, 1, 2, ... without gaps.
class Offset : public StrongInt<struct OffsetTag, int64_t> {
public:
    using StrongInt::StrongInt;
    constexpr Offset next() const { return Offset(value() + 1); }
    constexpr Offset operator+(int64_t n) const { return Offset(value() + n); }
    // Records between two offsets.
    constexpr int64_t operator-(Offset other) const { return value() - other.value(); }
};

// The index of a partition inside its topic: 0 .. partitions-1.
class PartitionId : public StrongInt<struct PartitionIdTag, int32_t> {
public:
    using StrongInt::StrongInt;
};

}  // namespace eventloom

template <>
struct std::hash<eventloom::Offset> {
    size_t operator()(eventloom::Offset o) const noexcept {
        return std::hash<int64_t>()(o.value());
    }
};
template <>
struct std::hash<eventloom::PartitionId> {
    size_t operator()(eventloom::PartitionId p) const noexcept {
        return std::hash<int32_t>()(p.value());
    }
};
