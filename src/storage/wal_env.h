// The Env the database runs on: the caller's (or the default), with one
// change for write-ahead log files. RocksDB preallocates a log in blocks
// with FALLOC_FL_KEEP_SIZE, so every append grows the file's size and every
// synced commit's fdatasync must also write the inode. Here logs are
// preallocated with their size (fallocate mode 0, no data written: the
// blocks were allocated anyway), so a synced append only writes its data.
// RocksDB trims the file to what was written when it closes the log; after a
// crash the unwritten tail reads as zeros, which its log reader skips as the
// padding of preallocated logs (kPointInTimeRecovery; the crash and
// power-loss tests cover it).
//
// RocksDB preallocates a log in steps of 1.1 write buffers (70 MiB by
// default), which on a small volume (a gateway's card, a test's tmpfs) takes
// all the free space for a moment, or for good where fallocate stops half way:
// here the steps are what `step` returns when a log is created, at most
// kMaxWalPreallocation (one more size change, and so one more costly
// fdatasync, per step). The free-space guard sizes them from its reserve and
// keeps one step free above it (storage/disk_guard.h).
//
// Measured on the dev machine's ext4: write + fdatasync of 300 bytes, 162 us
// appending to a keep-size preallocated file, 90 us inside a size-extended one.
//
// Thread-safety: as the wrapped FileSystem.
#pragma once

#include <rocksdb/env.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace jaiminho::internal {

inline constexpr size_t kMaxWalPreallocation = 4 << 20;

// An Env over `base` (nullptr: Env::Default()) whose FileSystem preallocates
// log files with their size, in steps of at most `step()` bytes (called from
// RocksDB's threads; must outlive the Env). Must outlive every DB opened with it.
std::unique_ptr<rocksdb::Env> MakeWalEnv(rocksdb::Env* base, std::function<uint64_t()> step);

}  // namespace jaiminho::internal
