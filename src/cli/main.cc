// eventloom: the command line. Each subcommand registers an Action; main parses, sets up
// logging and runs it. Exceptions stop here.
#include <cstdlib>
#include <iostream>

#include "cli/cli.h"
#include "common/logging.h"

int main(int argc, char** argv) {
    using namespace eventloom;
    CLI::App app{
        "eventloom: an event-driven runtime for LLM workloads.\n"
        "Events go into a durable log of topics; pipelines of stages consume them."};
    app.require_subcommand(1);
    app.set_version_flag("--version", "eventloom 0.1.0");

    cli::GlobalOptions global;
    const char* env_dir = std::getenv("EVENTLOOM_DATA_DIR");
    global.data_dir = env_dir && *env_dir ? env_dir : "eventloom-data";
    app.add_option(
           "--data-dir", global.data_dir,
           "Directory of the embedded log (default: $EVENTLOOM_DATA_DIR or ./eventloom-data)")
        ->capture_default_str();
    app.add_option("--log-level", global.log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
        ->capture_default_str();

    cli::Action action;
    cli::AddLogCommands(app, global, action);
    cli::AddDlqCommands(app, global, action);
    cli::AddBenchCommands(app, global, action);
    cli::AddModelCommands(app, global, action);
    cli::AddLlmCommands(app, global, action);
    cli::AddPipelineCommands(app, global, action);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    logging::SetLevel(spdlog::level::from_str(global.log_level));
    if (!action) {
        std::cerr << app.help();
        return 2;
    }
    try {
        return action();
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
