// Shared pieces of the eventloom command line: global options and argument parsers.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "eventloom/llm.h"
#include "eventloom/status.h"

namespace eventloom::cli {

struct GlobalOptions {
    std::string data_dir;
    std::string log_level = "warn";
};

// The command a subcommand chose to run; returns the process exit code.
using Action = std::function<int()>;

// "64M", "1G", "4096" -> bytes. InvalidArgument names the text.
Result<uint64_t> ParseBytes(const std::string& text);
// "500ms", "30s", "5m", "2h", "7d" -> milliseconds; a bare number is milliseconds.
Result<std::chrono::milliseconds> ParseDuration(const std::string& text);

// Prints "error: <message>" to stderr and returns the exit code for it.
int Fail(const Status& status);

void AddLogCommands(CLI::App& app, GlobalOptions& global, Action& action);
void AddDlqCommands(CLI::App& app, GlobalOptions& global, Action& action);
void AddBenchCommands(CLI::App& app, GlobalOptions& global, Action& action);
void AddModelCommands(CLI::App& app, GlobalOptions& global, Action& action);
void AddLlmCommands(CLI::App& app, GlobalOptions& global, Action& action);
void AddPipelineCommands(CLI::App& app, GlobalOptions& global, Action& action);

// Which model a command runs: a GGUF file in process, or an OpenAI-compatible server's URL.
struct ModelFlags {
    std::string model;
    std::string server_model;
    int threads = 0;
    int context = 2048;  // per sequence
    int slots = 8;
    bool raw = false;  // raw prompts, no chat template
    bool no_top_k = false;
};
void AddModelFlags(CLI::App* cmd, ModelFlags& flags);
bool IsModelUrl(const std::string& model);
Result<std::unique_ptr<LlmBackend>> OpenModel(const ModelFlags& flags);

}  // namespace eventloom::cli
