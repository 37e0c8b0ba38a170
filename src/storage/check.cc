#include "storage/check.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "storage/keys.h"
#include "storage/status.h"
#include "storage/stream_reader.h"
#include "util/macros.h"

namespace jaiminho::internal {
namespace {
// Seqs skipped past a repaired reservation: events issued and deleted since
// (delivered with delete_after_send, published inline) leave no key, so the
// highest seq on disk may be below the highest ever issued. Gaps are harmless;
// the committer reserves this many at a time anyway.
constexpr uint64_t kRepairMargin = uint64_t{1} << 16;
}  // namespace

Result<StreamExtent> ScanStreamExtent(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream) {
  StreamExtent out;
  auto note = [&](uint64_t seq) { out.highest_seq = out.highest_seq ? std::max(*out.highest_seq, seq) : seq; };
  const std::string what = fmt::format("check keys of stream '{}'", stream);
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  for (EventState state : kSeqKeyedStates) {
    // The last well-formed key of the range (malformed keys are verify's business).
    StateRange range(db, cf, state, {}, ro);
    for (range.SeekToLast(); range.Valid(); range.Prev()) {
      if (auto k = range.key()) {
        note(k->seq);
        break;
      }
    }
    JM_RETURN_IF_ERROR(range.status(what));
  }
  StateRange pending(db, cf, EventState::kPending, {}, ro);
  for (; pending.Valid(); pending.Next()) {
    if (auto k = pending.key()) {
      out.lowest_pending = k->seq;
      break;
    }
  }
  JM_RETURN_IF_ERROR(pending.status(what));
  StateRange retries(db, cf, EventState::kRetrying, {}, ro);
  for (; retries.Valid(); retries.Next()) {
    if (auto k = retries.key()) note(k->seq);
  }
  JM_RETURN_IF_ERROR(retries.status(what));
  return out;
}

StreamMetaCheck CheckStreamMeta(std::string_view stream, uint64_t hwm, uint64_t cursor, const StreamExtent& extent,
                                uint32_t format) {
  StreamMetaCheck c;
  c.hwm = hwm;
  c.cursor = cursor;
  // In format 2 the pending keys below the cursor are the delivered events, so
  // only a cursor past every seq ever issued is known to be wrong; lowering it
  // delivers those events again rather than lose one.
  const bool impossible = cursor > std::max(hwm, extent.highest_seq ? *extent.highest_seq + 1 : 1);
  if ((format < 2 || impossible) && extent.lowest_pending && *extent.lowest_pending < cursor) {
    c.problems.push_back(
        fmt::format("stream '{}': relay cursor {} is past pending seq {} (the relay and the gauges would skip it); "
                    "cursor lowered to {}{}",
                    stream, cursor, *extent.lowest_pending, *extent.lowest_pending,
                    format < 2 ? "" : " (the events above it still on disk are delivered again)"));
    c.cursor = *extent.lowest_pending;
    c.cursor_changed = true;
  }
  // The next seq issued is `hwm`: it must be above every seq on disk, and not
  // below the cursor (an event below the cursor would never be read).
  const uint64_t floor = std::max(extent.highest_seq ? *extent.highest_seq + 1 : 1, c.cursor);
  if (hwm < floor) {
    uint64_t repaired = floor + kRepairMargin;
    if (extent.highest_seq && hwm <= *extent.highest_seq) {
      c.problems.push_back(
          fmt::format("stream '{}': seq reservation {} is not above the highest seq {} on disk (new commits would "
                      "overwrite acknowledged events); raised to {}",
                      stream, hwm, *extent.highest_seq, repaired));
    } else {
      c.problems.push_back(fmt::format(
          "stream '{}': seq reservation {} is below the relay cursor {} (new events would be skipped); raised to {}",
          stream, hwm, c.cursor, repaired));
    }
    c.hwm = repaired;
    c.hwm_changed = true;
  }
  return c;
}

std::optional<uint64_t> ReadDurableWatermark(const std::string& path) {
  std::ifstream in(path + "/" + std::string(kDurableFile));
  if (!in) return std::nullopt;
  std::string magic;
  int version = 0;
  uint64_t seq = 0;
  if (!(in >> magic >> version >> seq) || magic != "jaiminho-durable" || version != 1) return std::nullopt;
  return seq;
}

Status WriteDurableWatermark(const std::string& path, uint64_t sequence) {
  const std::string file = path + "/" + std::string(kDurableFile);
  const std::string tmp = file + ".tmp";
  const std::string text = fmt::format("jaiminho-durable 1 {}\n", sequence);
  auto fail = [&](std::string_view what) {
    return MakeError(ErrorCode::kIOError,
                     fmt::format("write durable watermark {}: {}: {}", file, what, std::strerror(errno)));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("open");
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  errno = saved;
  if (!ok) {
    ::unlink(tmp.c_str());
    return fail("write");
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) return fail("rename");
  int dir = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

std::optional<std::string> CheckWal(const std::string& path, std::optional<uint64_t> watermark, uint64_t recovered) {
  if (!watermark || recovered >= *watermark) return std::nullopt;
  return fmt::format(
      "{}: the write-ahead log lost acknowledged writes: recovery stopped at RocksDB sequence {}, but {} was durable "
      "at the last clean close (a truncated or corrupt *.log file); commits acknowledged after the point of damage "
      "are lost, seqs issued then are not reused",
      path, recovered, *watermark);
}

}  // namespace jaiminho::internal
