// LlamaServerProcess: a real llama-server started by a test, on a free port on 127.0.0.1, with
// its output in a log file of its own temporary directory. The child dies with the test
// process (PR_SET_PDEATHSIG); Stop (or the destructor) ends it with SIGTERM, then SIGKILL after
// 10 s.
//
// Used by one thread (a suite's SetUpTestSuite and TearDownTestSuite).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace eventloom::testing {

class LlamaServerProcess {
public:
    LlamaServerProcess() = default;
    ~LlamaServerProcess() { Stop(); }

    LlamaServerProcess(const LlamaServerProcess&) = delete;
    LlamaServerProcess& operator=(const LlamaServerProcess&) = delete;

    // Starts `server` serving `model` with `args` after the host, port and model, and waits up
    // to 120 s for /health. Returns "" once it answers; otherwise what went wrong, for a test
    // failure: the binary or the model is missing (and how to get it), or the server exited or
    // did not answer, with the end of its log.
    std::string Start(const std::string& server, const std::string& model,
                      const std::vector<std::string>& args);
    void Stop();

    int port() const { return port_; }
    // "http://127.0.0.1:<port>/v1".
    std::string base_url() const;

private:
    std::unique_ptr<TempDir> dir_;
    std::string log_;
    int port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace eventloom::testing
