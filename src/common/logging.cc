#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <map>
#include <mutex>

namespace eventloom::logging {
namespace {

struct Registry {
    std::mutex mu;
    spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    spdlog::level::level_enum level = spdlog::level::info;
    std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
};

Registry& GetRegistry() {
    static Registry* registry = new Registry();  // never destroyed: loggers outlive statics
    return *registry;
}

}  // namespace

std::shared_ptr<spdlog::logger> Get(const std::string& component) {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.loggers.find(component);
    if (it != r.loggers.end()) return it->second;
    auto logger = std::make_shared<spdlog::logger>(component, r.sink);
    logger->set_level(r.level);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
    r.loggers.emplace(component, logger);
    return logger;
}

void SetSink(spdlog::sink_ptr sink) {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.sink = std::move(sink);
    for (auto& [name, logger] : r.loggers) {
        logger->sinks().clear();
        logger->sinks().push_back(r.sink);
    }
}

void SetLevel(spdlog::level::level_enum level) {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.level = level;
    for (auto& [name, logger] : r.loggers) logger->set_level(level);
}

}  // namespace eventloom::logging
