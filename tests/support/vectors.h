// Test helpers for embedding vectors: length and element-wise difference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace eventloom::testing {

inline double Norm(const std::vector<float>& v) {
    double sum = 0;
    for (float x : v) sum += static_cast<double>(x) * x;
    return std::sqrt(sum);
}

// The largest |a[i] - b[i]|; a failure when the sizes differ.
inline double MaxDifference(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double max = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        max = std::max(max, static_cast<double>(std::fabs(a[i] - b[i])));
    }
    return max;
}

}  // namespace eventloom::testing
