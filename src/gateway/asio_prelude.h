// The one header through which the gateway's .cc files reach Boost.Asio and Boost.Beast.
//
// GCC 12 in C++20 mode compiles boost/asio/awaitable.hpp (Boost 1.74), which uses std::exchange
// without including <utility>; including <utility> first makes every Asio user build. Include
// this header first, and only from .cc files of src/gateway: Beast costs seconds and hundreds
// of megabytes per translation unit, so no header that others include may pull it in.
#pragma once

// clang-format off
#include <utility>  // before Asio, see above

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on
