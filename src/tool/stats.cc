// stats: the metrics gauges of every stream, as a table, JSON or Prometheus text;
// with the counters of the process holding the database, through its control socket.
#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "tool/commands.h"
#include "tool/format.h"
#include "tool/inspect.h"
#include "util/json.h"
#include "util/macros.h"

namespace jaiminho::tool {
namespace {

// The metrics of the process holding the database, counters included, through
// its control socket; only the streams asked for (all when none), by name.
Result<std::vector<StreamMetrics>> LiveMetrics(const StatsOptions& o, Io& io, const LiveControl& live) {
  JM_ASSIGN_OR_RETURN(auto lines, CallLive(io, "stats", o.path, live, {.action = "stats"}));
  std::vector<StreamMetrics> all;
  for (const auto& line : lines) {
    JM_ASSIGN_OR_RETURN(StreamMetrics m, internal::DecodeMetrics(line));
    all.push_back(std::move(m));
  }
  std::sort(all.begin(), all.end(), [](const StreamMetrics& a, const StreamMetrics& b) { return a.stream < b.stream; });
  if (o.streams.empty()) return all;
  std::vector<StreamMetrics> out;
  for (const StreamMetrics& m : all) {
    if (std::find(o.streams.begin(), o.streams.end(), m.stream) != o.streams.end()) out.push_back(m);
  }
  for (const auto& name : o.streams) {
    if (std::none_of(all.begin(), all.end(), [&](const StreamMetrics& m) { return m.stream == name; })) {
      std::vector<std::string> names;
      names.reserve(all.size());
      for (const StreamMetrics& m : all)
        names.push_back(m.stream);
      return MakeError(ErrorCode::kNotFound,
                       fmt::format("{} has no stream '{}' (streams: {})", o.path, name,
                                   names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
    }
  }
  return out;
}

int StatsTo(const StatsOptions& o, Io& io) {
  if (o.prometheus && o.json) {
    return Report(io, "stats", Error(ErrorCode::kInvalidArgument, "--prometheus and --json exclude each other"),
                  kExitUsage);
  }
  // Held by a process with a control socket: its metrics, counters included.
  // Otherwise (or when that socket does not answer) the gauges from the files.
  auto control = FindLiveControl(o.path, /*required=*/false);
  if (!control) return ReportOpenError(io, "stats", control.error());
  std::vector<StreamMetrics> metrics;
  std::vector<StreamInfo> infos;  // from the files (not live)
  bool live = false;
  if (*control) {
    auto got = LiveMetrics(o, io, **control);
    if (got) {
      metrics = std::move(*got);
      live = true;
    } else if (got.error().code() == ErrorCode::kBusy) {
      io.err << fmt::format("jaiminho-tool stats: {}; reading the database files instead (gauges only)\n",
                            got.error().message())
             << std::flush;
    } else {
      return Report(io, "stats", got.error());
    }
  }
  if (!live) {
    auto db = OpenForReading(o.path);
    if (!db) return ReportOpenError(io, "stats", db.error());
    auto names = SelectStreams(**db, o.path, o.streams);
    if (!names) return Report(io, "stats", names.error());
    auto inspected = InspectStreams(**db, *names, SystemClock()->Now());
    if (!inspected) return Report(io, "stats", inspected.error());
    infos = std::move(*inspected);
    for (const StreamInfo& info : infos)
      metrics.push_back(info.metrics);
  }

  if (o.prometheus) {
    io.out << RenderPrometheus(metrics, {.counters = live}) << std::flush;
    return kExitOk;
  }
  if (o.json) {
    for (const StreamMetrics& m : metrics) {
      JsonObject line;
      auto info =
          std::find_if(infos.begin(), infos.end(), [&](const StreamInfo& i) { return i.metrics.stream == m.stream; });
      AddStreamFacts(line, info != infos.end() ? *info : StreamInfo{.metrics = m, .live = true});
      if (live) {
        // The counters of the process holding the database, since it opened it.
        line.U64("committed_events_total", m.committed)
            .U64("published_events_total", m.published)
            .U64("failed_attempts_total", m.failed)
            .U64("retried_events_total", m.retried)
            .U64("parked_events_total", m.parked)
            .U64("dropped_events_total", m.dropped);
      }
      io.out << line.Done() << "\n";
    }
    io.out.flush();
    return kExitOk;
  }
  std::vector<std::string> header = {"stream",         "pending", "retrying", "parked",
                                     "oldest_pending", "blocked", "last_seq"};
  if (live) header.insert(header.end(), {"published", "failed"});  // counters since the holder opened it
  Table table(io.out, header, io.out_tty);
  StreamMetrics total;
  uint64_t blocked = 0;
  for (const StreamMetrics& m : metrics) {
    std::vector<std::string> row = {m.stream,
                                    std::to_string(m.pending),
                                    std::to_string(m.retrying),
                                    std::to_string(m.parked_records),
                                    m.oldest_pending_age ? FormatAge(*m.oldest_pending_age) : "-",
                                    m.blocked ? "yes" : "no",
                                    std::to_string(m.last_seq)};
    if (live) row.insert(row.end(), {std::to_string(m.published), std::to_string(m.failed)});
    table.Add(std::move(row));
    total.pending += m.pending;
    total.retrying += m.retrying;
    total.parked_records += m.parked_records;
    if (m.oldest_pending_age && (!total.oldest_pending_age || *m.oldest_pending_age > *total.oldest_pending_age)) {
      total.oldest_pending_age = m.oldest_pending_age;
    }
    total.published += m.published;
    total.failed += m.failed;
    blocked += m.blocked ? 1 : 0;
  }
  if (io.out_tty && metrics.size() > 1) {
    std::vector<std::string> row = {"(all)",
                                    std::to_string(total.pending),
                                    std::to_string(total.retrying),
                                    std::to_string(total.parked_records),
                                    total.oldest_pending_age ? FormatAge(*total.oldest_pending_age) : "-",
                                    std::to_string(blocked),
                                    ""};
    if (live) row.insert(row.end(), {std::to_string(total.published), std::to_string(total.failed)});
    table.Add(std::move(row));
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
