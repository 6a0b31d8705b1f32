// FaultFileSystem: a test double of FileSystem that wraps the real one and injects faults.
//
// It remembers, per file, every write not yet covered by a Sync of that file, so it can
// simulate power loss: Crash() undoes those writes (optionally keeping a torn prefix of the
// earliest one) and then plays dead, failing every later write and sync, until Revive().
// It can also fail syncs and tear writes on demand.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/file.h"

namespace eventloom::testing {

class FaultFileSystem final : public FileSystem {
public:
    explicit FaultFileSystem(FileSystem* base = FileSystem::Default()) : base_(base) {}

    // Every Sync fails with an I/O error while set.
    void FailSyncs(bool fail);
    // After `bytes` more bytes are written, a write is torn: the part up to the limit reaches
    // the file and the call fails. -1 turns this off.
    void TearWritesAfter(int64_t bytes);
    // Undoes every unsynced write (keeping the first `keep_torn_bytes` of the earliest one) and
    // fails all later writes and syncs until Revive().
    void Crash(size_t keep_torn_bytes = 0);
    void Revive();

    // While paused, Sync blocks until ResumeSyncs(). syncs_waiting() counts blocked callers.
    void PauseSyncs();
    void ResumeSyncs();
    int syncs_waiting() const;

    int syncs() const;
    // Bytes written but not synced yet, over all files.
    size_t unsynced_bytes() const;

    Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) override;
    Status CreateDirs(const std::string& path) override { return base_->CreateDirs(path); }
    Result<std::vector<std::string>> ListDir(const std::string& path) override {
        return base_->ListDir(path);
    }
    Status Remove(const std::string& path) override;
    Status RemoveAll(const std::string& path) override { return base_->RemoveAll(path); }
    Status Rename(const std::string& from, const std::string& to) override;
    Status SyncDir(const std::string& path) override;
    bool Exists(const std::string& path) override { return base_->Exists(path); }
    Result<int64_t> ModifiedTimeMs(const std::string& path) override {
        return base_->ModifiedTimeMs(path);
    }

private:
    friend class FaultFile;
    struct Undo {
        uint64_t offset;
        std::string old_bytes;  // what the range held before the write
        uint64_t old_size;      // the file's size before the write
        std::string new_bytes;
    };

    Status BeforeWrite(const std::string& path, File* file, uint64_t offset, std::string_view data,
                       size_t* allowed);
    Status BeforeSync(const std::string& path);

    FileSystem* base_;
    mutable std::mutex mu_;
    std::map<std::string, std::vector<Undo>> unsynced_;  // by path
    bool fail_syncs_ = false;
    int64_t tear_after_ = -1;
    bool dead_ = false;
    int syncs_ = 0;
    bool paused_ = false;
    int waiting_ = 0;
    std::condition_variable resume_cv_;
};

}  // namespace eventloom::testing
