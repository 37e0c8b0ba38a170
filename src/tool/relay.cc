// relay: delivers the database's events to a sink, once or until a signal.
#include "jaiminho/relay.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include "jaiminho/logger.h"
#include "jaiminho/metrics.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "tool/progress.h"
#include "tool/sinks.h"

namespace jaiminho::tool {
namespace {

// Counts acknowledged events for the progress line; passes everything through.
class CountingPublisher final : public Publisher {
 public:
  CountingPublisher(std::shared_ptr<Publisher> inner, Progress& progress)
      : inner_(std::move(inner)), progress_(progress) {}

  Status Publish(const Event& event) override {
    auto s = inner_->Publish(event);
    if (s) progress_.Add(1);
    return s;
  }
  void PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) override {
    inner_->PublishBatch(events, order, results);
    uint64_t ok = 0;
    for (const Status& s : results)
      ok += s.has_value() ? 1 : 0;
    if (ok > 0) progress_.Add(ok);
  }

 private:
  std::shared_ptr<Publisher> inner_;
  Progress& progress_;
};

std::string Summary(const RelayStats& s, std::chrono::steady_clock::duration elapsed) {
  double secs = std::chrono::duration<double>(elapsed).count();
  return fmt::format(
      "relay: {} published, {} failed attempts, {} retries scheduled, {} parked, {} stream{} blocked ({:.2f} s, "
      "{:.0f} events/s)",
      s.published, s.failed, s.retried, s.parked, s.blocked, s.blocked == 1 ? "" : "s", secs,
      secs > 0 ? static_cast<double>(s.published) / secs : 0.0);
}

}  // namespace

int RelayCommand(const RelayCommandOptions& o, Io& io) {
  auto interval = ParseDuration(o.interval, "--interval");
  if (!interval) return Report(io, "relay", interval.error(), kExitUsage);
  auto sink = MakeSink(o.sink, io.out);
  if (!sink) return Report(io, "relay", sink.error(), kExitUsage);

  std::optional<StopSignals> signals;
  if (o.loop) signals.emplace();

  auto keys = LoadSigningKeys(o.keys_file);
  if (!keys) return Report(io, "relay", keys.error(), kExitUsage);
  // One line per change on stderr (publisher down/up, streams blocked and
  // unblocked, parked events), written at once: it shows with stderr
  // redirected to a file or the journal.
  std::shared_ptr<Logger> logger =
      &io.err == &std::cerr ? MakeStderrLogger(LogLevel::kInfo) : MakeStreamLogger(io.err, LogLevel::kInfo);
  auto opened = OpenForWriting(o.path, std::move(*keys), logger, o.control_socket);
  if (!opened) return ReportOpenError(io, "relay", opened.error());
  Outbox& outbox = **opened;
  for (const std::string& name : o.streams) {
    if (auto s = outbox.FindStream(name); !s) {
      return Report(io, "relay", Error(ErrorCode::kNotFound, fmt::format("{} has no stream '{}'", o.path, name)));
    }
  }

  // On a terminal the stdout sink's lines are the progress; otherwise count on stderr.
  const bool show_progress = io.err_tty && !(o.sink == "stdout" && io.out_tty);
  Progress progress(io.err, show_progress, "relay");
  // One pass delivers at most the backlog (pending and retrying events): the
  // progress line's total. Counted only when the line is shown.
  if (show_progress && !o.loop) {
    if (auto metrics = CollectMetrics(outbox)) {
      uint64_t backlog = 0;
      for (const StreamMetrics& m : *metrics) {
        if (o.streams.empty() || std::find(o.streams.begin(), o.streams.end(), m.stream) != o.streams.end()) {
          backlog += m.pending + m.retrying;
        }
      }
      progress.SetTotal(backlog);
    }
  }
  auto counting = std::make_shared<CountingPublisher>(*sink, progress);
  const auto start = std::chrono::steady_clock::now();
  Result<RelayStats> stats = RelayStats{};
  {
    auto relay = Relay::Make(outbox, counting, {.streams = o.streams, .interval = *interval});
    if (!relay) {
      stats = tl::unexpected(relay.error());  // a bad option
    } else if (!o.loop) {
      stats = (*relay)->RunOnce();
    } else {
      // One pass first, so that an error (an I/O error) ends the command at
      // once instead of being retried by the loop.
      stats = (*relay)->RunOnce();
      if (stats) {
        std::stop_source stop;
        Result<RelayStats> looped = RelayStats{};
        const pthread_t waiter = pthread_self();
        std::thread runner([&] {
          looped = (*relay)->Run(stop.get_token());
          if (!stop.stop_requested()) StopSignals::Wake(waiter);  // Run ended by itself
        });
        signals->Wait();
        stop.request_stop();
        runner.join();
        if (looped) {
          *stats += *looped;
        } else {
          stats = looped;
        }
      }
    }
  }
  progress.Finish();
  io.out.flush();
  auto closed = outbox.Close();
  if (!stats) return Report(io, "relay", stats.error());
  io.err << Summary(*stats, std::chrono::steady_clock::now() - start) << "\n" << std::flush;
  if (!closed) return Report(io, "relay", closed.error());
  // A loop retries failures itself and ends only when told to: that is success.
  if (o.loop) return kExitOk;
  return stats->failed > 0 || stats->blocked > 0 ? kExitFailed : kExitOk;
}

}  // namespace jaiminho::tool
