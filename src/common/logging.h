// Logging: one named spdlog logger per component ("log", "broker", "cli", ...), all writing to
// one shared sink. eventloom is also a library, so the sink is replaceable: an embedding
// program calls SetLogSink() before opening anything.
//
// Messages are lowercase and name their subject: "topic=orders partition=3 offset=1042 ...".
// Nothing logs at info level per event; per-event facts are counted in metrics.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace eventloom::logging {

// The logger of `component`, created on first use. Thread-safe.
std::shared_ptr<spdlog::logger> Get(const std::string& component);

// Replaces the sink of every logger, present and future. Thread-safe.
void SetSink(spdlog::sink_ptr sink);

// Sets the level of every logger, present and future ("trace".."off").
void SetLevel(spdlog::level::level_enum level);

}  // namespace eventloom::logging
