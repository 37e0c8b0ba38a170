// verify: every record of every stream through CheckRecord; lists the bad ones.
#include <fmt/format.h>

#include "storage/meta.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "tool/progress.h"
#include "tool/records.h"
#include "util/json.h"

namespace jaiminho::tool {

int Verify(const VerifyOptions& o, Io& io) {
  auto db = OpenForReading(o.path);
  // A database whose jaiminho.meta fails verification is damaged (exit 4), not a usage error.
  if (!db) return ReportOpenError(io, "verify", db.error());
  auto names = SelectStreams(**db, o.path, o.streams);
  if (!names) return Report(io, "verify", names.error());
  auto signer = VerifierFromFile(o.keys_file, (*db)->snapshot.id);
  if (!signer) return Report(io, "verify", signer.error(), kExitUsage);

  Progress progress(io.err, io.err_tty, "verify");
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
      std::string line = "{\"stream\":";
      internal::AppendJsonString(line, r.stream);
      line += ",\"seq\":" + (r.key ? seq : std::string("null"));
      line += ",\"stored_state\":";
      if (r.key) {
        internal::AppendJsonString(line, stored);
      } else {
        line += "null";
      }
      line += ",\"error\":";
      internal::AppendJsonString(line, r.error);
      line += ",\"raw_key_hex\":\"" + internal::ToHex(r.raw_key) + "\"}\n";
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
    auto scanned =
        ScanRecords((*db)->db.get(), cf, name, (*db)->snapshot.id, RecordFilter{}, report_bad, signer->get());
    if (!scanned) {
      progress.Clear();
      return Report(io, "verify", scanned.error());
    }
  }
  progress.Finish();
  if (!o.json && io.out_tty && !rows.empty()) {
    Table table(io.out, header, true);
    for (auto& row : rows)
      table.Add(std::move(row));
  }
  io.out.flush();
  io.err << fmt::format("verify: {} records in {} streams of {}: {} bad\n", records, names->size(), o.path, bad)
         << std::flush;
  return bad > 0 ? kExitFailed : kExitOk;
}

}  // namespace jaiminho::tool
