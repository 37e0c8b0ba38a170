// Progress of long operations (relay, verify, dump) on a terminal's stderr.
//
//   tool::Progress progress(err, /*enabled=*/isatty(2), "relay");
//   progress.SetTotal(backlog);  // when the amount of work is known
//   for (...) progress.Add(1);
//   progress.Finish();
//
// The line shows what is done, the rate over the last seconds and, with a
// total, the percentage and the time left at that rate:
//   "relay: 1200/5000 events (24%), 950/s, ETA 4.0s ..."
// and when finished, the count and the average rate of the whole run:
//   "relay: 5000/5000 events (100%) in 5.2s, 961/s"
// When disabled (stderr is not a terminal) it writes nothing at all.
// Thread-safety: Add, SetTotal, Clear and Finish may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "util/mutex.h"

namespace jaiminho::tool {

class Progress {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // The rate shown is measured over this much recent time.
  static constexpr std::chrono::seconds kRateWindow{5};

  // `now`: the time source (steady_clock::now by default; tests pass their own).
  Progress(std::ostream& err, bool enabled, std::string label, Clock now = {});
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // The amount of work, when known (the backlog): adds done/total, the
  // percentage and an ETA to the line. An `estimate` (RocksDB's estimated
  // number of keys) shows as "~total"; the percentage stops at 100.
  void SetTotal(uint64_t total, bool estimate = false) EXCLUDES(mu_);
  // Counts `n` more events; redraws the line at most ten times a second.
  void Add(uint64_t n = 1) EXCLUDES(mu_);
  // Erases the progress line, so that other output to the same terminal starts
  // on a clean line. The next Add draws it again.
  void Clear() EXCLUDES(mu_);
  // Draws the final count and rate and ends the line (when anything was drawn).
  void Finish() EXCLUDES(mu_);

  uint64_t count() const EXCLUDES(mu_);

 private:
  void Draw(bool final) REQUIRES(mu_);

  // Constant after construction (err_ is written under mu_).
  std::ostream& err_;
  const bool enabled_;
  const std::string label_;
  const Clock now_;
  const std::chrono::steady_clock::time_point start_;

  mutable internal::Mutex mu_;
  // Guarded by mu_.
  uint64_t count_ GUARDED_BY(mu_) = 0;
  std::optional<uint64_t> total_ GUARDED_BY(mu_);
  bool estimate_ GUARDED_BY(mu_) = false;
  // (time, count) at each draw of the last kRateWindow, oldest first.
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> samples_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_draw_ GUARDED_BY(mu_);
  bool drawn_ GUARDED_BY(mu_) = false;
};

}  // namespace jaiminho::tool
