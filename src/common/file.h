// The file layer under the log. Everything the log does to disk goes through FileSystem and
// File, so tests can swap in a fault-injecting implementation (tests/support/fault_fs.h) that
// tears writes, fails syncs and simulates a crash by dropping what was never synced.
//
// File objects are not copyable and not thread-safe for concurrent writes; concurrent ReadAt
// calls are safe (they use pread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom {

class File {
public:
    File() = default;
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    virtual ~File() = default;

    // Writes all of `data` at byte `offset`.
    virtual Status WriteAt(uint64_t offset, std::string_view data) = 0;
    // Reads up to `n` bytes at `offset` into `buf`; fewer only at end of file.
    virtual Result<size_t> ReadAt(uint64_t offset, char* buf, size_t n) const = 0;
    // Makes written data durable (fdatasync).
    virtual Status Sync() = 0;
    virtual Status Truncate(uint64_t size) = 0;
    // Reserves disk for bytes [from, size) and fills them with zeros, so that later writes
    // there overwrite written blocks and their syncs carry no file-system metadata. The file's
    // size becomes at least `size`. The caller syncs.
    virtual Status Preallocate(uint64_t from, uint64_t size) = 0;
    virtual Result<uint64_t> Size() const = 0;
    virtual const std::string& path() const = 0;
};

enum class OpenMode {
    kRead,       // existing file, read only
    kReadWrite,  // created when missing
};

class FileSystem {
public:
    virtual ~FileSystem() = default;

    // The real POSIX file system. Never null; lives for the whole process.
    static FileSystem* Default();

    virtual Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) = 0;
    virtual Status CreateDirs(const std::string& path) = 0;
    // Names (not paths) of the entries in `path`, unsorted.
    virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
    virtual Status Remove(const std::string& path) = 0;
    virtual Status RemoveAll(const std::string& path) = 0;
    virtual Status Rename(const std::string& from, const std::string& to) = 0;
    // Makes the directory's entries (creations, renames, removals) durable.
    virtual Status SyncDir(const std::string& path) = 0;
    virtual bool Exists(const std::string& path) = 0;
    virtual Result<int64_t> ModifiedTimeMs(const std::string& path) = 0;

    // Replaces `path` with `data` so that a crash leaves either the old or the new content:
    // write a temporary file, sync it, rename it over, sync the directory.
    Status WriteFileAtomic(const std::string& path, std::string_view data);
    Result<std::string> ReadFile(const std::string& path);
};

}  // namespace eventloom
