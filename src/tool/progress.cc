#include "tool/progress.h"

#include <fmt/format.h>

namespace jaiminho::tool {

Progress::Progress(std::ostream& err, bool enabled, std::string label)
    : err_(err), enabled_(enabled), label_(std::move(label)), start_(std::chrono::steady_clock::now()) {}

void Progress::Add(uint64_t n) {
  internal::MutexLock l(mu_);
  count_ += n;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
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
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = secs > 0 ? static_cast<double>(count_) / secs : 0;
  err_ << fmt::format("\r\x1b[K{}: {} events, {:.0f}/s{}", label_, count_, rate, final ? "" : " ...") << std::flush;
  drawn_ = true;
}

}  // namespace jaiminho::tool
