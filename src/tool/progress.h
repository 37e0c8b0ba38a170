// Progress of long operations (relay, verify, dump) on a terminal's stderr.
//
//   tool::Progress progress(err, /*enabled=*/isatty(2), "verify");
//   for (...) progress.Add(1);
//   progress.Finish();   // "verify: 120000 events, 95000/s" and a newline
//
// When disabled (stderr is not a terminal) it writes nothing at all.
// Thread-safety: Add, Clear and Finish may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

#include "util/mutex.h"

namespace jaiminho::tool {

class Progress {
 public:
  Progress(std::ostream& err, bool enabled, std::string label);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

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
  const std::chrono::steady_clock::time_point start_;

  mutable internal::Mutex mu_;
  // Guarded by mu_.
  uint64_t count_ GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point last_draw_ GUARDED_BY(mu_);
  bool drawn_ GUARDED_BY(mu_) = false;
};

}  // namespace jaiminho::tool
