#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace eventloom {
namespace {

Status ErrnoStatus(std::string_view op, const std::string& path, int err) {
    std::string message = std::string(op) + " " + path + ": " + std::strerror(err);
    switch (err) {
        case ENOENT:
            return NotFoundError(std::move(message));
        case EEXIST:
            return AlreadyExistsError(std::move(message));
        case ENOSPC:
        case EDQUOT:
            return ResourceExhaustedError(std::move(message));
        case EACCES:
        case EPERM:
        case EROFS:
            return FailedPreconditionError(std::move(message));
        case EINTR:
        case EAGAIN:
            return UnavailableError(std::move(message));
        default:
            return InternalError(std::move(message));
    }
}

class PosixFile final : public File {
public:
    PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    ~PosixFile() override { ::close(fd_); }

    Status WriteAt(uint64_t offset, std::string_view data) override {
        const char* p = data.data();
        size_t left = data.size();
        while (left > 0) {
            ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR) continue;
                return ErrnoStatus("write", path_, errno);
            }
            p += n;
            left -= static_cast<size_t>(n);
            offset += static_cast<uint64_t>(n);
        }
        return Status::Ok();
    }

    Result<size_t> ReadAt(uint64_t offset, char* buf, size_t n) const override {
        size_t done = 0;
        while (done < n) {
            ssize_t r = ::pread(fd_, buf + done, n - done, static_cast<off_t>(offset + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                return ErrnoStatus("read", path_, errno);
            }
            if (r == 0) break;
            done += static_cast<size_t>(r);
        }
        return done;
    }

    Status Sync() override {
        if (::fdatasync(fd_) != 0) return ErrnoStatus("fdatasync", path_, errno);
        return Status::Ok();
    }

    Status Truncate(uint64_t size) override {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
            return ErrnoStatus("ftruncate", path_, errno);
        }
        return Status::Ok();
    }

    Status Preallocate(uint64_t from, uint64_t size) override {
        if (size <= from) return Status::Ok();
        int err = ::posix_fallocate(fd_, static_cast<off_t>(from), static_cast<off_t>(size - from));
        if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
            return ErrnoStatus("fallocate", path_, err);
        }
        static const std::string kZeros(1 << 20, '\0');
        for (uint64_t at = from; at < size; at += kZeros.size()) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(kZeros.size(), size - at));
            EVENTLOOM_RETURN_IF_ERROR(WriteAt(at, std::string_view(kZeros.data(), n)));
        }
        return Status::Ok();
    }

    Result<uint64_t> Size() const override {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return ErrnoStatus("fstat", path_, errno);
        return static_cast<uint64_t>(st.st_size);
    }

    const std::string& path() const override { return path_; }

private:
    int fd_;
    std::string path_;
};

class PosixFileSystem final : public FileSystem {
public:
    Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) override {
        int flags = mode == OpenMode::kRead ? O_RDONLY : (O_RDWR | O_CREAT);
        int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
        if (fd < 0) return ErrnoStatus("open", path, errno);
        return std::unique_ptr<File>(std::make_unique<PosixFile>(fd, path));
    }

    Status CreateDirs(const std::string& path) override {
        std::error_code ec;
        std::filesystem::create_directories(path, ec);
        if (ec) return ErrnoStatus("mkdir", path, ec.value());
        return Status::Ok();
    }

    Result<std::vector<std::string>> ListDir(const std::string& path) override {
        std::error_code ec;
        std::vector<std::string> names;
        for (auto it = std::filesystem::directory_iterator(path, ec);
             !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
            names.push_back(it->path().filename().string());
        }
        if (ec) return ErrnoStatus("list", path, ec.value());
        return names;
    }

    Status Remove(const std::string& path) override {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
            return ErrnoStatus("unlink", path, errno);
        }
        return Status::Ok();
    }

    Status RemoveAll(const std::string& path) override {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
        if (ec) return ErrnoStatus("remove", path, ec.value());
        return Status::Ok();
    }

    Status Rename(const std::string& from, const std::string& to) override {
        if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus("rename", from, errno);
        return Status::Ok();
    }

    Status SyncDir(const std::string& path) override {
        int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return ErrnoStatus("open", path, errno);
        int rc = ::fsync(fd);
        int err = errno;
        ::close(fd);
        if (rc != 0) return ErrnoStatus("fsync", path, err);
        return Status::Ok();
    }

    bool Exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

    Result<int64_t> ModifiedTimeMs(const std::string& path) override {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path, errno);
        return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    }
};

std::string DirName(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace

FileSystem* FileSystem::Default() {
    static PosixFileSystem* fs = new PosixFileSystem();
    return fs;
}

Status FileSystem::WriteFileAtomic(const std::string& path, std::string_view data) {
    std::string tmp = path + ".tmp";
    {
        EVENTLOOM_ASSIGN_OR_RETURN(auto file, Open(tmp, OpenMode::kReadWrite));
        EVENTLOOM_RETURN_IF_ERROR(file->Truncate(0));
        EVENTLOOM_RETURN_IF_ERROR(file->WriteAt(0, data));
        EVENTLOOM_RETURN_IF_ERROR(file->Sync());
    }
    EVENTLOOM_RETURN_IF_ERROR(Rename(tmp, path));
    return SyncDir(DirName(path));
}

Result<std::string> FileSystem::ReadFile(const std::string& path) {
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, Open(path, OpenMode::kRead));
    EVENTLOOM_ASSIGN_OR_RETURN(uint64_t size, file->Size());
    std::string data(size, '\0');
    EVENTLOOM_ASSIGN_OR_RETURN(size_t n, file->ReadAt(0, data.data(), size));
    data.resize(n);
    return data;
}

}  // namespace eventloom
