// verify: every record of every stream through CheckRecord; lists the bad ones.
// Also the checks Outbox::Open makes (storage/check.h): meta records against
// each stream's keys, and the WAL against the durable watermark; and the
// inbox's records (ScanInbox: key form, version, checksum, structure), each
// bad one named on io.err.
#include <fmt/format.h>

#include "storage/check.h"
#include "storage/inbox_record.h"
#include "storage/meta.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "tool/progress.h"
#include "tool/records.h"
#include "util/json.h"

namespace jaiminho::tool {

int Verify(const VerifyOptions& o, Io& io) {
  // Read before opening: a writer closing meanwhile can only raise it.
  const auto watermark = internal::ReadDurableWatermark(o.path);
  auto db = OpenForReading(o.path);
  // A database whose jaiminho.meta fails verification is damaged (exit 4), not a usage error.
  if (!db) return ReportOpenError(io, "verify", db.error());
  auto names = SelectStreams(**db, o.path, o.streams);
  if (!names) return Report(io, "verify", names.error());
  auto signer = VerifierFromFile(o.keys_file, (*db)->snapshot.id);
  if (!signer) return Report(io, "verify", signer.error(), kExitUsage);

  Progress progress(io.err, io.err_tty, "verify");
  if (io.err_tty) {
    // RocksDB's estimate of the records to read (delivery-log records included).
    uint64_t estimate = 0;
    for (const std::string& name : *names) {
      uint64_t keys = 0;
      rocksdb::ColumnFamilyHandle* cf = (*db)->Family(std::string(internal::kStreamFamilyPrefix) + name);
      if ((*db)->db->GetIntProperty(cf, rocksdb::DB::Properties::kEstimateNumKeys, &keys)) estimate += keys;
    }
    if (estimate > 0) progress.SetTotal(estimate, /*estimate=*/true);
  }
  const std::vector<std::string> header = {"stream", "seq", "stored_state", "error"};
  // Piped: bad records are written as found (the header comes with the first).
  // On a terminal they are kept for one aligned table after the progress line.
  std::optional<Table> piped;
  if (!o.json && !io.out_tty) piped.emplace(io.out, header, false);
  std::vector<std::vector<std::string>> rows;
  uint64_t records = 0, bad = 0;
  auto report_bad = [&](const Record& r) {
    ++records;
    progress.Add(1);
    if (r.ok()) return true;
    ++bad;
    std::string seq = r.key ? std::to_string(r.key->seq) : "";
    std::string stored = r.key ? std::string(ToString(r.key->state)) : "";
    if (o.json) {
      std::string line = JsonObject()
                             .Str("stream", r.stream)
                             .U64OrNull("seq", r.key ? std::optional<uint64_t>(r.key->seq) : std::nullopt)
                             .StrOrNull("stored_state", r.key ? std::optional<std::string_view>(stored) : std::nullopt)
                             .Str("error", r.error)
                             .Str("raw_key_hex", internal::ToHex(r.raw_key))
                             .Done();
      line.push_back('\n');
      progress.Clear();
      io.out << line << std::flush;
    } else {
      std::vector<std::string> row = {std::string(r.stream), seq.empty() ? "?" : seq, stored.empty() ? "?" : stored,
                                      r.error};
      if (piped) {
        piped->Add(std::move(row));
      } else {
        rows.push_back(std::move(row));
      }
    }
    return true;
  };
  for (const std::string& name : *names) {
    rocksdb::ColumnFamilyHandle* cf = (*db)->Family(std::string(internal::kStreamFamilyPrefix) + name);
    auto delivered = DeliveredOf(**db, name);
    if (!delivered) {
      progress.Clear();
      return Report(io, "verify", delivered.error());
    }
    auto scanned = ScanRecords((*db)->db.get(), cf, name, (*db)->snapshot.id, *delivered, RecordFilter{}, report_bad,
                               signer->get());
    if (!scanned) {
      progress.Clear();
      return Report(io, "verify", scanned.error());
    }
  }
  // Problems of the database as a whole: one line each on io.err.
  std::vector<std::string> problems;
  if (auto p = internal::CheckWal(o.path, watermark, (*db)->db->GetLatestSequenceNumber())) problems.push_back(*p);
  for (const std::string& name : *names) {
    rocksdb::ColumnFamilyHandle* cf = (*db)->Family(std::string(internal::kStreamFamilyPrefix) + name);
    auto extent = internal::ScanStreamExtent((*db)->db.get(), cf, name);
    if (!extent) {
      progress.Clear();
      return Report(io, "verify", extent.error());
    }
    uint64_t hwm = 1, cursor = 0;
    if (auto it = (*db)->snapshot.streams.find(name); it != (*db)->snapshot.streams.end()) {
      hwm = it->second.hwm.value_or(1);
      cursor = it->second.cursor;
    }
    auto check = internal::CheckStreamMeta(name, hwm, cursor, *extent, (*db)->snapshot.format);
    for (auto& p : check.problems) {
      // What Outbox::Open would do about it, not what was done.
      if (auto cut = p.rfind("; "); cut != std::string::npos) p = p.substr(0, cut) + " (Outbox::Open repairs it)";
      problems.push_back(std::move(p));
    }
  }
  // The inbox's records (when the database has one): each one's key, version and checksum.
  uint64_t inbox_records = 0, inbox_bad = 0;
  auto inbox = ScanInbox(**db, o.path, [&](const InboxEntry& e) {
    ++inbox_records;
    if (e.error.empty()) return;
    ++inbox_bad;
    problems.push_back(e.error);
  });
  if (!inbox) {
    progress.Clear();
    return Report(io, "verify", inbox.error());
  }
  progress.Finish();
  for (const auto& p : problems)
    io.err << "verify: " << p << "\n";
  if (!o.json && io.out_tty && !rows.empty()) {
    Table table(io.out, header, true);
    for (auto& row : rows)
      table.Add(std::move(row));
  }
  io.out.flush();
  io.err << fmt::format("verify: {} records in {} streams of {}: {} bad", records, names->size(), o.path, bad);
  if ((*db)->Family(internal::kInboxFamily) != nullptr) {
    io.err << fmt::format(", {} inbox records: {} bad", inbox_records, inbox_bad);
  }
  if (problems.size() > inbox_bad) io.err << fmt::format(", {} inconsistencies", problems.size() - inbox_bad);
  io.err << "\n" << std::flush;
  return bad > 0 || !problems.empty() ? kExitFailed : kExitOk;
}

}  // namespace jaiminho::tool
