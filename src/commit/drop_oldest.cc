#include "commit/drop_oldest.h"

#include <fmt/format.h>

#include <algorithm>

#include "storage/envelope.h"
#include "storage/stream_reader.h"
#include "util/macros.h"

namespace jaiminho::internal {
namespace {

struct Candidate {
  uint64_t seq;
  KeyBuf key;
  uint64_t bytes;
};

// The events' own bytes of a record; its stored size when it does not decode.
uint64_t BytesOf(AlignedArena& arena, std::string_view value) {
  auto d = DecodeEnvelope(arena.Copy(value));
  return d ? EventBytes(d->event) : value.size();
}

KeyBuf Copy(std::string_view raw) {
  KeyBuf k;
  k.size = static_cast<uint8_t>(std::min(raw.size(), sizeof k.bytes));
  std::memcpy(k.bytes, raw.data(), k.size);
  return k;
}

}  // namespace

Result<DropPlan> PlanDrop(OutboxImpl& o, StreamState& s, uint64_t adds_events, uint64_t adds_bytes) {
  DropPlan plan;
  plan.stream = &s;
  const uint64_t max_events = s.quota_events(), max_bytes = s.quota_bytes();
  const uint64_t waiting = s.WaitingEvents();
  const uint64_t waiting_bytes = s.WaitingBytes();
  uint64_t need_events = max_events != 0 && waiting + adds_events > max_events ? waiting + adds_events - max_events : 0;
  uint64_t need_bytes =
      max_bytes != 0 && waiting_bytes + adds_bytes > max_bytes ? waiting_bytes + adds_bytes - max_bytes : 0;
  if (need_events == 0 && need_bytes == 0) return plan;
  // The slack: at least 1% of a limit that is passed.
  if (need_events > 0) need_events = std::max(need_events, max_events / 100);
  if (need_bytes > 0) need_bytes = std::max(need_bytes, max_bytes / 100);

  // Seqs publish-on-commit is publishing (or resolved since): not ours. The
  // claims are read after the iterators exist, as a relay pass does
  // (core/claim_table.h): a commit claims its events before they become
  // visible, so every inline one the iterators can see is still claimed or
  // resolved by then. Read before them, a commit written in between would
  // show its events as pending and unclaimed, and a drop would delete events
  // the dispatcher is publishing (acknowledged and reported dropped).
  std::vector<uint64_t> claimed;
  s.claims.BeginPass();
  s.claims.IteratorsCreating();
  const uint64_t cursor = s.cursor.load(std::memory_order_acquire);
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  // Every retrying record (their key order is by due time, not seq), and the
  // pending records in seq order.
  StateRange retry_it(o.db.get(), s.cf, EventState::kRetrying, {}, ro);
  StateRange pending_it(o.db.get(), s.cf, EventState::kPending, {.from_seq = cursor}, ro);
  s.claims.Snapshot(cursor, claimed);
  auto is_claimed = [&](uint64_t seq) { return std::binary_search(claimed.begin(), claimed.end(), seq); };

  AlignedArena arena;
  std::vector<Candidate> candidates;
  Status read;
  for (; retry_it.Valid(); retry_it.Next()) {
    auto k = retry_it.key();
    if (!k || is_claimed(k->seq)) continue;
    candidates.push_back({k->seq, Copy(retry_it.raw_key()), BytesOf(arena, retry_it.value())});
    arena.Reset();
  }
  read = retry_it.status(fmt::format("drop-oldest: read the retry range of stream '{}'", s.name));
  if (read) {
    // As many pending records as the need alone would take.
    uint64_t events = 0, bytes = 0;
    for (; pending_it.Valid() && (events < need_events || bytes < need_bytes); pending_it.Next()) {
      auto k = pending_it.key();
      if (!k || is_claimed(k->seq)) continue;
      candidates.push_back({k->seq, Copy(pending_it.raw_key()), BytesOf(arena, pending_it.value())});
      arena.Reset();
      ++events;
      bytes += candidates.back().bytes;
    }
    read = pending_it.status(fmt::format("drop-oldest: read the pending range of stream '{}'", s.name));
  }
  s.claims.EndPass();
  JM_RETURN_IF_ERROR(read);

  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) { return a.seq < b.seq; });
  for (const Candidate& c : candidates) {
    if (plan.events >= need_events && plan.bytes >= need_bytes) break;
    plan.keys.push_back(c.key);
    plan.first_seq = plan.events == 0 ? c.seq : plan.first_seq;
    plan.last_seq = c.seq;
    ++plan.events;
    plan.bytes += c.bytes;
  }
  // Enough when what remains with the commit fits (the slack aside).
  const bool events_fit = max_events == 0 || waiting - std::min(waiting, plan.events) + adds_events <= max_events;
  const bool bytes_fit =
      max_bytes == 0 || waiting_bytes - std::min(waiting_bytes, plan.bytes) + adds_bytes <= max_bytes;
  if (!events_fit || !bytes_fit) {
    return MakeError(
        ErrorCode::kResourceExhausted,
        fmt::format("stream '{}' quota: {} events of {} bytes waiting for delivery, this commit adds {} "
                    "of {} bytes, the limits are {} events and {} bytes (0: none), and dropping the "
                    "{} oldest droppable events is not enough (parked events are not dropped: requeue "
                    "or skip them; nor are events being published on commit: retry once they are); nothing "
                    "was written",
                    s.name, waiting, waiting_bytes, adds_events, adds_bytes, max_events, max_bytes, plan.events));
  }
  return plan;
}

}  // namespace jaiminho::internal
