// The JSON line every benchmark ends with: its own fields, the headline figures of the first
// size at the top level (where tools look for them), and every size under "by_size".
#pragma once

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace eventloom::bench {

inline void PrintResultLine(nlohmann::json out, const nlohmann::json& by_size,
                            const std::vector<size_t>& sizes) {
    if (!sizes.empty() && by_size.contains(std::to_string(sizes.front()))) {
        for (auto& [k, v] : by_size[std::to_string(sizes.front())].items()) {
            if (!out.contains(k)) out[k] = v;
        }
    }
    out["by_size"] = by_size;
    std::cout << out.dump() << std::endl;
}

}  // namespace eventloom::bench
