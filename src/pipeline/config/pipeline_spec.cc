// The small value types of pipeline_spec.h; the loader is in pipeline_loader.cc.
#include "pipeline/config/pipeline_spec.h"

#include <fmt/format.h>

namespace eventloom::pipeline {

std::string SourceLocation::ToString() const {
    if (line <= 0) return file;
    if (column <= 0) return fmt::format("{}:{}", file, line);
    return fmt::format("{}:{}:{}", file, line, column);
}

std::string Diagnostic::ToString() const {
    const std::string place = where.ToString();
    if (place.empty()) return "error: " + message;
    return fmt::format("{}: error: {}", place, message);
}

Status DiagnosticsStatus(const std::vector<Diagnostic>& diagnostics) {
    if (diagnostics.empty()) return Status::Ok();
    std::string text;
    for (const Diagnostic& d : diagnostics) {
        if (!text.empty()) text += '\n';
        text += d.ToString();
    }
    return Status(StatusCode::kInvalidArgument, std::move(text));
}

SourceLocation Options::LocationOf(const std::string& pointer) const {
    std::string p = pointer;
    while (true) {
        auto it = locations.find(p);
        if (it != locations.end()) return it->second;
        if (p.empty()) return {};
        const size_t slash = p.rfind('/');
        p.resize(slash == std::string::npos ? 0 : slash);
    }
}

std::string_view StageKindName(StageKind kind) {
    switch (kind) {
        case StageKind::kTransform:
            return "transform";
        case StageKind::kRoute:
            return "route";
        case StageKind::kLlm:
            return "llm";
        case StageKind::kHttp:
            return "http";
        case StageKind::kEmit:
            return "emit";
        case StageKind::kNotify:
            return "notify";
        case StageKind::kRetrieve:
            return "retrieve";
    }
    return "unknown";
}

const ModelSpec* PipelineSpec::FindModel(std::string_view model) const {
    for (const ModelSpec& m : models) {
        if (m.name == model) return &m;
    }
    return nullptr;
}

const IndexSpec* PipelineSpec::FindIndex(std::string_view index) const {
    for (const IndexSpec& i : indexes) {
        if (i.name == index) return &i;
    }
    return nullptr;
}

const StageSpec* PipelineSpec::FindStage(std::string_view stage) const {
    for (const StageSpec& s : stages) {
        if (s.name == stage) return &s;
    }
    return nullptr;
}

}  // namespace eventloom::pipeline
