#include "core/claim_table.h"

#include <algorithm>

namespace jaiminho::internal {

void ClaimTable::Claim(uint64_t seq) {
  MutexLock l(mu_);
  claimed_.push_back(seq);
  any_.store(true, std::memory_order_release);
}

void ClaimTable::Release(uint64_t seq) {
  MutexLock l(mu_);
  auto it = std::find(claimed_.begin(), claimed_.end(), seq);
  if (it != claimed_.end()) claimed_.erase(it);
  // A relay pass in progress may still see the record in its iterator.
  if (pass_in_progress_) resolved_.push_back(seq);
  any_.store(!claimed_.empty() || !resolved_.empty(), std::memory_order_release);
}

void ClaimTable::BeginPass() {
  MutexLock l(mu_);
  resolved_.clear();
  pass_in_progress_ = true;
}

void ClaimTable::EndPass() {
  MutexLock l(mu_);
  pass_in_progress_ = false;
  resolved_.clear();
  any_.store(!claimed_.empty(), std::memory_order_release);
}

void ClaimTable::IteratorsCreating() {
  MutexLock l(mu_);
  resolved_.clear();
}

void ClaimTable::Snapshot(uint64_t cursor, std::vector<uint64_t>& out) {
  out.clear();
  if (!any_.load(std::memory_order_acquire)) return;
  MutexLock l(mu_);
  std::erase_if(resolved_, [&](uint64_t seq) { return seq < cursor; });
  out.insert(out.end(), claimed_.begin(), claimed_.end());
  out.insert(out.end(), resolved_.begin(), resolved_.end());
  std::sort(out.begin(), out.end());
}

}  // namespace jaiminho::internal
