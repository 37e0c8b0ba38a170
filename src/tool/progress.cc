#include "tool/progress.h"

#include <fmt/format.h>

#include "tool/format.h"

namespace jaiminho::tool {

namespace {
Progress::Clock OrSteady(Progress::Clock now) {
  if (now) return now;
  return [] { return std::chrono::steady_clock::now(); };
}
}  // namespace

Progress::Progress(std::ostream& err, bool enabled, std::string label, Clock now)
    : err_(err), enabled_(enabled), label_(std::move(label)), now_(OrSteady(std::move(now))), start_(now_()) {
  internal::MutexLock l(mu_);
  samples_.emplace_back(start_, 0);
}

void Progress::SetTotal(uint64_t total, bool estimate) {
  internal::MutexLock l(mu_);
  total_ = total;
  estimate_ = estimate;
}

void Progress::Add(uint64_t n) {
  internal::MutexLock l(mu_);
  count_ += n;
  if (!enabled_) return;
  auto now = now_();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  samples_.emplace_back(now, count_);
  while (samples_.size() > 2 && now - samples_[1].first >= kRateWindow)
    samples_.pop_front();
  Draw(false);
}

void Progress::Clear() {
  internal::MutexLock l(mu_);
  if (!enabled_ || !drawn_) return;
  err_ << "\r\x1b[K" << std::flush;
  drawn_ = false;
}

void Progress::Finish() {
  internal::MutexLock l(mu_);
  if (!enabled_ || count_ == 0) return;
  Draw(true);
  err_ << "\n" << std::flush;
  drawn_ = false;
}

uint64_t Progress::count() const {
  internal::MutexLock l(mu_);
  return count_;
}

void Progress::Draw(bool final) {
  std::string line = fmt::format("\r\x1b[K{}: ", label_);
  // With a total: done/total (percent); the count can pass a total that was an estimate.
  if (total_ && *total_ > 0) {
    const uint64_t shown = std::min<uint64_t>(100, count_ * 100 / *total_);
    line += fmt::format("{}/{}{} events ({}%)", count_, estimate_ ? "~" : "", *total_, shown);
  } else {
    line += fmt::format("{} events", count_);
  }
  const auto now = now_();
  if (final) {
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(count_) / secs : 0;
    line += fmt::format(" in {}, {:.0f}/s",
                        FormatAge(std::chrono::duration_cast<std::chrono::microseconds>(now - start_)), rate);
  } else {
    // The rate over the samples of the last kRateWindow.
    const auto& [t0, c0] = samples_.front();
    const double secs = std::chrono::duration<double>(now - t0).count();
    if (secs > 0 && count_ >= c0) {
      const double rate = static_cast<double>(count_ - c0) / secs;
      line += fmt::format(", {:.0f}/s", rate);
      if (total_ && *total_ > count_ && rate > 0) {
        const double left = static_cast<double>(*total_ - count_) / rate;
        line += ", ETA " + FormatAge(std::chrono::microseconds(static_cast<int64_t>(left * 1e6)));
      }
    }
    line += " ...";
  }
  err_ << line << std::flush;
  drawn_ = true;
}

}  // namespace jaiminho::tool
