// inbox: what the Inbox (src/inbox/) has recorded, per (producer database id,
// stream), read from the jaiminho.inbox column family of a read-only view.
#include <fmt/format.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/inbox_record.h"
#include "storage/open.h"
#include "storage/status.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "util/json.h"

namespace jaiminho::tool {
namespace {

// On a terminal, at most this many ranges per cell (the rest counted).
constexpr size_t kTerminalRanges = 8;

// "12-14, 17" (ranges, inclusive), "-" for none; on a terminal cut after
// kTerminalRanges with "... (N ranges)".
std::string Ranges(const std::vector<internal::InboxRange>& ranges, bool terminal) {
  if (ranges.empty()) return "-";
  std::string out;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (terminal && i == kTerminalRanges) {
      out += fmt::format(", … ({} ranges)", ranges.size());
      break;
    }
    if (i > 0) out += ", ";
    const internal::InboxRange& r = ranges[i];
    out += r.first == r.last ? std::to_string(r.first) : fmt::format("{}-{}", r.first, r.last);
  }
  return out;
}

// [{"first_seq", "last_seq", ...}]: the above ranges with the time their
// earliest seq arrived, or the gaps.
std::string RangesJson(const std::vector<internal::InboxRange>& ranges, bool above) {
  std::string out = "[";
  for (size_t i = 0; i < ranges.size(); ++i) {
    const internal::InboxRange& r = ranges[i];
    JsonObject o;
    o.U64("first_seq", r.first).U64("last_seq", r.last).U64("seqs", r.last - r.first + 1);
    if (above) {
      o.Time("arrived_at", FromMicros(r.since_us));
      if (r.since_us == 0) {
        o.Null("arrived_at_us");
      } else {
        o.I64("arrived_at_us", r.since_us);
      }
    }
    if (i > 0) out += ",";
    out += o.Done();
  }
  return out + "]";
}

uint64_t SeqsOf(const std::vector<internal::InboxRange>& ranges) {
  uint64_t n = 0;
  for (const auto& r : ranges)
    n += r.last - r.first + 1;
  return n;
}

// A database id on the command line: 32 hex digits (either case).
Result<DatabaseId> ParseDbId(std::string_view text) {
  DatabaseId id;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  bool ok = text.size() == 32;
  for (size_t i = 0; ok && i < 16; ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[(2 * i) + 1]);
    ok = hi >= 0 && lo >= 0;
    if (ok) id.bytes[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  if (!ok) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("--db-id: '{}' is not a database id (32 hex digits, as the inbox shows them)", text));
  }
  return id;
}

}  // namespace

Status ScanInbox(const internal::ReadOnlyDb& db, const std::string& path,
                 const std::function<void(const InboxEntry&)>& each) {
  rocksdb::ColumnFamilyHandle* cf = db.Family(internal::kInboxFamily);
  if (cf == nullptr) return {};
  std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    InboxEntry e;
    e.raw_key = std::string(key);
    auto decoded_key = internal::DecodeInboxKey(key);
    if (!decoded_key) {
      e.error = fmt::format("{}: {}", path, decoded_key.error().message());
      each(e);
      continue;
    }
    e.db = decoded_key->first;
    e.stream = std::move(decoded_key->second);
    e.key_ok = true;
    auto record = internal::DecodeInboxRecord(std::string_view(it->value().data(), it->value().size()),
                                              fmt::format("{}: {} record of stream '{}' from database {}", path,
                                                          internal::kInboxFamily, EscapeCell(e.stream), e.db.ToHex()));
    if (record) {
      e.record = std::move(*record);
    } else {
      e.error = record.error().message();
    }
    each(e);
  }
  return internal::ToStatus(it->status(), fmt::format("read {} of {}", internal::kInboxFamily, path));
}

int InboxCommand(const InboxCommandOptions& o, Io& io) {
  std::vector<DatabaseId> ids;
  for (const std::string& text : o.db_ids) {
    auto id = ParseDbId(text);
    if (!id) return Report(io, "inbox", id.error(), kExitUsage);
    ids.push_back(*id);
  }
  auto db = OpenForReading(o.path);
  if (!db) return ReportOpenError(io, "inbox", db.error());
  const bool has_inbox = (*db)->Family(internal::kInboxFamily) != nullptr;

  std::optional<Table> table;
  if (!o.json) {
    if (o.gaps) {
      table.emplace(io.out, std::vector<std::string>{"db_id", "stream", "first_seq", "last_seq", "seqs"}, io.out_tty);
    } else {
      table.emplace(io.out,
                    std::vector<std::string>{"db_id", "stream", "watermark", "received", "above", "gaps", "gap_seqs",
                                             "forgotten"},
                    io.out_tty);
    }
  }
  if (!has_inbox) {
    if (table) table->Flush();
    io.out.flush();
    io.err << fmt::format("inbox: {} has no inbox ({} column family): nothing received through an Inbox\n", o.path,
                          internal::kInboxFamily)
           << std::flush;
    return kExitOk;
  }

  auto wanted = [&](const InboxEntry& e) {
    if (!e.key_ok) return true;  // a bad key is always reported
    if (!ids.empty() && std::find(ids.begin(), ids.end(), e.db) == ids.end()) return false;
    if (!o.streams.empty() && std::find(o.streams.begin(), o.streams.end(), e.stream) == o.streams.end()) return false;
    return true;
  };
  std::vector<std::string> bad;
  uint64_t records = 0;
  auto each = [&](const InboxEntry& e) {
    if (!wanted(e)) return;
    ++records;
    if (!e.error.empty()) {
      bad.push_back(e.error);
      return;
    }
    const internal::InboxRecord& r = e.record;
    const std::string id = e.db.ToHex();
    if (o.gaps) {
      for (const internal::InboxRange& g : r.gaps) {
        if (table) {
          table->Add(
              {id, e.stream, std::to_string(g.first), std::to_string(g.last), std::to_string(g.last - g.first + 1)});
        } else {
          io.out << JsonObject()
                        .Str("db_id", id)
                        .Str("stream", e.stream)
                        .U64("first_seq", g.first)
                        .U64("last_seq", g.last)
                        .U64("seqs", g.last - g.first + 1)
                        .Done()
                 << "\n";
        }
      }
      return;
    }
    if (table) {
      table->Add({id, e.stream, std::to_string(r.watermark), std::to_string(r.received), Ranges(r.above, io.out_tty),
                  Ranges(r.gaps, io.out_tty), std::to_string(r.gap_seqs), std::to_string(r.forgotten)});
      return;
    }
    io.out << JsonObject()
                  .Str("db_id", id)
                  .Str("stream", e.stream)
                  .U64("watermark", r.watermark)
                  .U64("received_events", r.received)
                  .U64("above_seqs", SeqsOf(r.above))
                  .Raw("above", RangesJson(r.above, true))
                  .Raw("gaps", RangesJson(r.gaps, false))
                  .U64("gap_seqs", r.gap_seqs)
                  .U64("forgotten_seqs", r.forgotten)
                  .Done()
           << "\n";
  };
  const Status scanned = ScanInbox(**db, o.path, each);
  if (table) table->Flush();
  io.out.flush();
  if (!scanned) return Report(io, "inbox", scanned.error());
  for (const std::string& line : bad)
    io.err << "inbox: " << line << "\n";
  if (!bad.empty()) io.err << fmt::format("inbox: {} records of {}: {} bad\n", records, o.path, bad.size());
  io.err << std::flush;
  return bad.empty() ? kExitOk : kExitFailed;
}

}  // namespace jaiminho::tool
