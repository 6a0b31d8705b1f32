#include "common/file.h"

#include <gtest/gtest.h>

#include "support/fault_fs.h"
#include "support/temp_dir.h"

namespace eventloom {
namespace {

using testing::FaultFileSystem;
using testing::TempDir;

TEST(PosixFile, WriteThenReadBack) {
    TempDir dir;
    FileSystem* fs = FileSystem::Default();
    auto file = fs->Open(dir.Sub("a"), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    ASSERT_TRUE((*file)->WriteAt(3, "abc").ok());
    char buf[8] = {};
    auto n = (*file)->ReadAt(0, buf, sizeof(buf));
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 6u);
    EXPECT_EQ(std::string(buf + 3, 3), "abc");
}

TEST(PosixFile, OpenMissingForReadIsNotFound) {
    TempDir dir;
    auto file = FileSystem::Default()->Open(dir.Sub("missing"), OpenMode::kRead);
    EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
    EXPECT_NE(file.status().message().find("missing"), std::string::npos);
}

TEST(PosixFile, PreallocateZeroFillsAndKeepsData) {
    TempDir dir;
    auto file = FileSystem::Default()->Open(dir.Sub("a"), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(0, "keep").ok());
    ASSERT_TRUE((*file)->Preallocate(4, (1 << 20) + 5).ok());
    EXPECT_EQ(*(*file)->Size(), (1u << 20) + 5);
    std::string head(8, 'x');
    ASSERT_TRUE((*file)->ReadAt(0, head.data(), head.size()).ok());
    EXPECT_EQ(head, std::string("keep\0\0\0\0", 8));
}

TEST(FileSystem, WriteFileAtomicReplacesContent) {
    TempDir dir;
    FileSystem* fs = FileSystem::Default();
    ASSERT_TRUE(fs->WriteFileAtomic(dir.Sub("meta"), "one").ok());
    ASSERT_TRUE(fs->WriteFileAtomic(dir.Sub("meta"), "two").ok());
    EXPECT_EQ(*fs->ReadFile(dir.Sub("meta")), "two");
    EXPECT_FALSE(fs->Exists(dir.Sub("meta.tmp")));
}

TEST(FaultFileSystem, CrashUndoesUnsyncedWrites) {
    TempDir dir;
    FaultFileSystem fs;
    auto file = fs.Open(dir.Sub("f"), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(0, "synced").ok());
    ASSERT_TRUE((*file)->Sync().ok());
    ASSERT_TRUE((*file)->WriteAt(6, "-lost").ok());
    fs.Crash();
    EXPECT_EQ(*FileSystem::Default()->ReadFile(dir.Sub("f")), "synced");
    EXPECT_FALSE((*file)->WriteAt(0, "x").ok());
    fs.Revive();
    EXPECT_TRUE((*file)->WriteAt(0, "x").ok());
}

TEST(FaultFileSystem, CrashCanKeepATornPrefix) {
    TempDir dir;
    FaultFileSystem fs;
    auto file = fs.Open(dir.Sub("f"), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(0, "abcdef").ok());
    fs.Crash(/*keep_torn_bytes=*/2);
    EXPECT_EQ(*FileSystem::Default()->ReadFile(dir.Sub("f")), "ab");
}

TEST(FaultFileSystem, FailedSyncReportsError) {
    TempDir dir;
    FaultFileSystem fs;
    auto file = fs.Open(dir.Sub("f"), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    fs.FailSyncs(true);
    EXPECT_FALSE((*file)->Sync().ok());
}

TEST(FaultFileSystem, TornWriteWritesOnlyThePrefix) {
    TempDir dir;
    FaultFileSystem fs;
    auto file = fs.Open(dir.Sub("f"), OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    fs.TearWritesAfter(3);
    EXPECT_FALSE((*file)->WriteAt(0, "abcdef").ok());
    EXPECT_EQ(*FileSystem::Default()->ReadFile(dir.Sub("f")), "abc");
}

}  // namespace
}  // namespace eventloom
