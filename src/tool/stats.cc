// stats: the metrics gauges of every stream, as a table, JSON or Prometheus text.
#include <fmt/format.h>

#include <sstream>

#include "tool/commands.h"
#include "tool/format.h"
#include "tool/inspect.h"
#include "util/json.h"

namespace jaiminho::tool {
namespace {

int StatsTo(const StatsOptions& o, Io& io) {
  if (o.prometheus && o.json) {
    return Report(io, "stats", Error(ErrorCode::kInvalidArgument, "--prometheus and --json exclude each other"),
                  kExitUsage);
  }
  auto db = OpenForReading(o.path);
  if (!db) return ReportOpenError(io, "stats", db.error());
  auto names = SelectStreams(**db, o.path, o.streams);
  if (!names) return Report(io, "stats", names.error());
  auto infos = InspectStreams(**db, *names, SystemClock()->Now());
  if (!infos) return Report(io, "stats", infos.error());
  std::vector<StreamMetrics> metrics;
  for (const StreamInfo& info : *infos)
    metrics.push_back(info.metrics);

  if (o.prometheus) {
    io.out << RenderPrometheus(metrics, {.counters = false}) << std::flush;
    return kExitOk;
  }
  if (o.json) {
    for (const StreamInfo& info : *infos) {
      JsonObject line;
      AddStreamFacts(line, info);
      io.out << line.Done() << "\n";
    }
    io.out.flush();
    return kExitOk;
  }
  Table table(io.out, {"stream", "pending", "retrying", "parked", "oldest_pending", "blocked", "last_seq"}, io.out_tty);
  StreamMetrics total;
  uint64_t blocked = 0;
  for (const StreamMetrics& m : metrics) {
    table.Add({m.stream, std::to_string(m.pending), std::to_string(m.retrying), std::to_string(m.parked_records),
               m.oldest_pending_age ? FormatAge(*m.oldest_pending_age) : "-", m.blocked ? "yes" : "no",
               std::to_string(m.last_seq)});
    total.pending += m.pending;
    total.retrying += m.retrying;
    total.parked_records += m.parked_records;
    if (m.oldest_pending_age && (!total.oldest_pending_age || *m.oldest_pending_age > *total.oldest_pending_age)) {
      total.oldest_pending_age = m.oldest_pending_age;
    }
    blocked += m.blocked ? 1 : 0;
  }
  if (io.out_tty && metrics.size() > 1) {
    table.Add({"(all)", std::to_string(total.pending), std::to_string(total.retrying),
               std::to_string(total.parked_records),
               total.oldest_pending_age ? FormatAge(*total.oldest_pending_age) : "-", std::to_string(blocked), ""});
  }
  table.Flush();
  return kExitOk;
}

}  // namespace

int Stats(const StatsOptions& o, Io& io) {
  if (o.output.empty()) return StatsTo(o, io);
  std::ostringstream text;
  Io to_file{text, io.err, /*out_tty=*/false, io.err_tty};
  const int code = StatsTo(o, to_file);
  if (code != kExitOk) return code;  // the file keeps what it had
  if (auto st = WriteFileAtomically(o.output, text.str()); !st) return Report(io, "stats", st.error());
  return kExitOk;
}

}  // namespace jaiminho::tool
