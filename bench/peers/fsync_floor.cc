#include "peers/fsync_floor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

namespace eventloom::bench {
namespace {

// A phase stops early (reporting fewer samples) if the disk is this slow.
constexpr auto kPhaseTimeLimit = std::chrono::seconds(60);
constexpr size_t kZeroChunk = 1 << 20;

std::string ErrnoMessage(std::string_view what, const std::string& path, int err) {
    return fmt::format("{} {}: {}", what, path, std::strerror(err));
}

// A scratch file created with mkstemp, closed and unlinked on destruction.
class ScratchFile {
public:
    static Result<ScratchFile> Create(const std::string& dir, std::string_view name) {
        std::string path = fmt::format("{}/{}.XXXXXX", dir, name);
        int fd = ::mkostemp(path.data(), O_CLOEXEC);
        if (fd < 0) return InternalError(ErrnoMessage("mkostemp", path, errno));
        return ScratchFile(fd, std::move(path));
    }

    ScratchFile(ScratchFile&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}
    ScratchFile& operator=(ScratchFile&&) = delete;
    ~ScratchFile() {
        if (fd_ < 0) return;
        ::close(fd_);
        ::unlink(path_.c_str());
    }

    int fd() const { return fd_; }
    const std::string& path() const { return path_; }

private:
    ScratchFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

    int fd_;
    std::string path_;
};

Status PwriteAll(const ScratchFile& file, const char* data, size_t n, off_t offset) {
    while (n > 0) {
        ssize_t written = ::pwrite(file.fd(), data, n, offset);
        if (written < 0 && errno == EINTR) continue;
        if (written < 0) return InternalError(ErrnoMessage("pwrite", file.path(), errno));
        data += written;
        n -= static_cast<size_t>(written);
        offset += written;
    }
    return Status::Ok();
}

Status DataSync(const ScratchFile& file) {
    if (::fdatasync(file.fd()) != 0) {
        return InternalError(ErrnoMessage("fdatasync", file.path(), errno));
    }
    return Status::Ok();
}

// Reserves `size` bytes and writes zeros over them, then syncs once, so later overwrites find
// initialized extents: posix_fallocate alone leaves "unwritten" extents on ext4 and XFS, and the
// first write into one is a metadata change that fdatasync must journal.
Status Preallocate(const ScratchFile& file, size_t size) {
    int err = ::posix_fallocate(file.fd(), 0, static_cast<off_t>(size));
    if (err != 0) return InternalError(ErrnoMessage("posix_fallocate", file.path(), err));

    const std::vector<char> zeros(kZeroChunk, '\0');
    for (size_t offset = 0; offset < size; offset += kZeroChunk) {
        size_t n = std::min(kZeroChunk, size - offset);
        EVENTLOOM_RETURN_IF_ERROR(PwriteAll(file, zeros.data(), n, static_cast<off_t>(offset)));
    }
    if (::fsync(file.fd()) != 0) return InternalError(ErrnoMessage("fsync", file.path(), errno));
    return Status::Ok();
}

// Times `samples` writes of `buf` at offset i * buf.size() (which, for a file written only
// here, is an append when the file starts empty), each followed by fdatasync.
Result<LatencyStats> TimeSyncedWrites(const ScratchFile& file, std::vector<char> buf, int samples) {
    std::vector<double> micros;
    micros.reserve(static_cast<size_t>(samples));
    const auto phase_deadline = std::chrono::steady_clock::now() + kPhaseTimeLimit;

    for (int i = 0; i < samples; ++i) {
        // Different bytes each time, so no layer can skip an unchanged block.
        buf[0] = static_cast<char>('a' + i % 26);
        const off_t offset = static_cast<off_t>(i) * static_cast<off_t>(buf.size());

        const auto start = std::chrono::steady_clock::now();
        EVENTLOOM_RETURN_IF_ERROR(PwriteAll(file, buf.data(), buf.size(), offset));
        EVENTLOOM_RETURN_IF_ERROR(DataSync(file));
        const auto end = std::chrono::steady_clock::now();

        micros.push_back(MicrosBetween(start, end));
        if (end > phase_deadline) break;
    }
    return Summarize(std::move(micros));
}

}  // namespace

Result<FsyncFloor> MeasureFsyncFloor(const std::string& dir, size_t write_bytes, int samples) {
    if (write_bytes == 0 || samples <= 0) {
        return InvalidArgumentError(fmt::format(
            "MeasureFsyncFloor: write_bytes={} samples={} must be positive", write_bytes, samples));
    }
    FsyncFloor floor;
    floor.write_bytes = write_bytes;
    const std::vector<char> buf(write_bytes, 'x');

    // Overwrites of a preallocated file.
    {
        EVENTLOOM_ASSIGN_OR_RETURN(auto file, ScratchFile::Create(dir, "fsync_floor_overwrite"));
        EVENTLOOM_RETURN_IF_ERROR(Preallocate(file, write_bytes * static_cast<size_t>(samples)));
        EVENTLOOM_ASSIGN_OR_RETURN(floor.overwrite, TimeSyncedWrites(file, buf, samples));
    }

    // Appends to a file that grows with every write.
    {
        EVENTLOOM_ASSIGN_OR_RETURN(auto file, ScratchFile::Create(dir, "fsync_floor_append"));
        EVENTLOOM_ASSIGN_OR_RETURN(floor.append, TimeSyncedWrites(file, buf, samples));
    }
    return floor;
}

}  // namespace eventloom::bench
