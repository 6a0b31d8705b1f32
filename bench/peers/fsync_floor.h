// The disk's fsync floor: how long one small write plus fdatasync takes on the file system
// that holds `dir`. Every durable log (eventloom's, Redis with appendfsync always) pays at least
// this per synced batch, so benchmarks print it next to their latencies.
//
// Writes go through the page cache (no O_DIRECT), as the logs being compared do. On tmpfs the
// figures are meaningless: fdatasync is a no-op there.
#pragma once

#include <cstddef>
#include <string>

#include "bench_util.h"
#include "eventloom/status.h"

namespace eventloom::bench {

struct FsyncFloor {
    size_t write_bytes = 0;
    // Overwrites inside a preallocated, zero-filled, synced file: only data reaches the disk
    // (plus the journal's commit on some file systems). p50 is "the disk's fsync floor".
    LatencyStats overwrite;
    // Appends to a growing file: every fdatasync also persists the new size (a metadata
    // journal commit), the cost a log pays when it does not preallocate segments.
    LatencyStats append;
};

// Measures `samples` write+fdatasync pairs of `write_bytes` each, first overwriting a
// preallocated file at increasing offsets, then appending to a new file. The files are created
// in `dir` (which must exist) and removed before returning. Takes about
// 2 * samples * p50 (under a second for 2000 samples on an SSD).
Result<FsyncFloor> MeasureFsyncFloor(const std::string& dir, size_t write_bytes = 256,
                                     int samples = 2000);

}  // namespace eventloom::bench
