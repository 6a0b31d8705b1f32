#include "llm/openai/llama_server_process.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/ports.h"

namespace eventloom::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr auto kStartTimeout = std::chrono::seconds(120);

// The HTTP status of GET `url`, or 0 when the connection fails.
long HttpGetStatus(const std::string& url) {
    CURL* curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION,
        +[](char*, size_t size, size_t count, void*) { return size * count; });
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return status;
}

std::string Tail(const std::string& path, size_t bytes = 3000) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const std::string all = text.str();
    return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace

std::string LlamaServerProcess::Start(const std::string& server, const std::string& model,
                                      const std::vector<std::string>& args) {
    if (::access(server.c_str(), X_OK) != 0) {
        return "llama-server not found at " + server + ": run scripts/setup.sh --peers";
    }
    if (::access(model.c_str(), R_OK) != 0) {
        return "tiny model not found at " + model +
               ": run ctest with the llm.make_tiny_model fixture "
               "(-R 'openai|make_tiny_model')";
    }

    dir_ = std::make_unique<TempDir>();
    log_ = dir_->Sub("llama-server.log");
    port_ = UnusedLoopbackPort();
    const std::string port = std::to_string(port_);
    std::vector<std::string> argv_strings = {server, "--host", "127.0.0.1", "--port",
                                             port,   "-m",     model};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_strings) argv.push_back(arg.data());
    argv.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
        // The child: dies with the test, logs to a file.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
        ::execv(server.c_str(), argv.data());
        ::_exit(127);
    }

    const auto until = steady_clock::now() + kStartTimeout;
    const std::string health = "http://127.0.0.1:" + port + "/health";
    while (steady_clock::now() < until) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return "llama-server exited during start-up (if it cannot load its libraries, run "
                   "scripts/setup.sh --peers); its log ends:\n" +
                   Tail(log_);
        }
        if (HttpGetStatus(health) == 200) return "";
        std::this_thread::sleep_for(milliseconds(100));
    }
    return "llama-server did not answer /health within 120 s; its log ends:\n" + Tail(log_);
}

void LlamaServerProcess::Stop() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        const auto until = steady_clock::now() + std::chrono::seconds(10);
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (steady_clock::now() > until) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(milliseconds(20));
        }
        pid_ = -1;
    }
    dir_.reset();
}

std::string LlamaServerProcess::base_url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
}

}  // namespace eventloom::testing
