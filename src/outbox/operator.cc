// Operator actions and record lookups: Outbox::ListEvents, FindEvent, Requeue, Skip.
// Each action appends to the event's history (Event::history).
#include <fmt/format.h>
#include <rocksdb/db.h>

#include <cstring>

#include "core/outbox_impl.h"
#include "delivery/delivery.h"
#include "storage/keys.h"
#include "storage/status.h"
#include "storage/stored_event.h"
#include "storage/stream_reader.h"
#include "util/macros.h"
#include "util/user.h"

namespace jaiminho {

using internal::KeyBuf;

Result<StoredEvent> StoredEventAccess::Make(std::string_view key, std::string_view raw, std::string_view stream,
                                            const DatabaseId& db) {
  size_t words = (raw.size() + 7) / 8 + (stream.size() + 7) / 8 + 1;
  std::shared_ptr<uint64_t[]> buf(new uint64_t[words]);
  char* base = reinterpret_cast<char*>(buf.get());
  std::memcpy(base, raw.data(), raw.size());
  char* name = base + ((raw.size() + 7) / 8) * 8;
  std::memcpy(name, stream.data(), stream.size());
  internal::CheckedRecord r =
      internal::CheckAlignedRecord(std::string_view(name, stream.size()), key, std::string_view(base, raw.size()), db);
  if (!r.ok()) return tl::unexpected(*r.error);
  StoredEvent out;
  out.event_ = std::move(r.envelope->event);
  out.buffer_ = std::move(buf);
  return out;
}

namespace {

struct Located {
  KeyBuf key;
  EventState state;
  std::string raw;
  int64_t sent_at_us = 0;  // a delivered event under its pending key (format 2)
};

// Finds seq in any range of the stream. kNotFound when absent.
Result<Located> Locate(OutboxImpl& o, StreamState& s, uint64_t seq) {
  rocksdb::ReadOptions ro;
  for (EventState state : internal::kSeqKeyedStates) {
    KeyBuf k = internal::SeqKey(internal::TagOf(state), seq);
    std::string v;
    auto st = o.db->Get(ro, s.cf, rocksdb::Slice(k.bytes, k.size), &v);
    if (st.ok() && state == EventState::kPending) {
      // Format 2: below the delivered cursor it was delivered (storage/delivery_log.h).
      const internal::PendingKeyState p = s.cleaner->ClassifyPending(seq);
      if (p.kind == internal::PendingKeyState::kGone) continue;
      if (p.kind == internal::PendingKeyState::kSent) return Located{k, EventState::kSent, std::move(v), p.sent_at_us};
    }
    if (st.ok()) return Located{k, state, std::move(v)};
    if (!st.IsNotFound()) {
      return tl::unexpected(internal::FromRocks(st, fmt::format("read stream '{}' seq {}", s.name, seq)));
    }
  }
  internal::StateRange it(o.db.get(), s.cf, EventState::kRetrying);
  for (; it.Valid(); it.Next()) {
    auto k = it.key();
    if (k && k->seq == seq) {
      Located l;
      std::memcpy(l.key.bytes, it.raw_key().data(), it.raw_key().size());
      l.key.size = static_cast<uint8_t>(it.raw_key().size());
      l.state = EventState::kRetrying;
      l.raw = std::string(it.value());
      return l;
    }
  }
  JM_RETURN_IF_ERROR(it.status(fmt::format("read retries of stream '{}'", s.name)));
  return MakeError(ErrorCode::kNotFound, fmt::format("stream '{}' has no event with seq {}", s.name, seq));
}

Result<internal::DecodedEnvelope> DecodeLocated(internal::AlignedArena& arena, const Located& l, StreamState& s,
                                                OutboxImpl& o, uint64_t seq) {
  // No signer: an operator can requeue or skip a tampered record.
  internal::CheckedRecord r = internal::CheckRecord(s.name, l.key.view(), l.raw, o.id, arena);
  if (!r.ok()) {
    return MakeError(ErrorCode::kCorruption, fmt::format("stream '{}' seq {}: {}", s.name, seq, r.error->message()));
  }
  return std::move(*r.envelope);
}

void Wake(OutboxImpl& o, StreamState& s) {
  s.poke.fetch_add(1, std::memory_order_release);
  o.WakeRelays();
}

// An operator's action as recorded: the entry appended to the event's history
// (Event::history) and the note it sets ("requeued by operator alice: why").
struct Action {
  std::string user;
  std::string reason;
  std::string note;
  HistoryEntry entry;

  Action(std::string_view action, std::string_view done, std::string_view why, std::string_view actor, Timestamp now)
      : user(internal::CutText(actor.empty() ? internal::EffectiveUserName() : actor, kMaxHistoryText)),
        reason(internal::CutText(why, kMaxHistoryText)),
        note(reason.empty() ? fmt::format("{} by operator {}", done, user)
                            : fmt::format("{} by operator {}: {}", done, user, reason)),
        entry{.at = now, .user = user, .action = action, .reason = reason} {}
  Action(const Action&) = delete;
  Action& operator=(const Action&) = delete;
};

}  // namespace

Result<std::vector<StoredEvent>> Outbox::ListEvents(const Stream& stream, EventState state, size_t limit) const {
  OutboxImpl& o = *impl_;
  StreamState& s = StreamAccess::Of(stream);
  JM_ASSIGN_OR_RETURN(auto guard, o.Enter("ListEvents"));
  JM_RETURN_IF_ERROR(o.CheckOwned(s, "ListEvents"));
  // Format 2 (storage/delivery_log.h): pending keys below the delivered cursor
  // hold delivered events, listed as sent.
  const internal::DeliveredView delivered = s.cleaner->delivered();
  std::vector<StoredEvent> out;
  // Up to `limit` from each range read (the sent ones come from two ranges:
  // merged by seq, then cut to `limit`).
  auto read = [&](EventState range, internal::SeqBounds bounds) -> Status {
    internal::StateRange it(o.db.get(), s.cf, range, bounds);
    const size_t cap = out.size() + limit;
    for (; it.Valid() && out.size() < cap; it.Next()) {
      auto ev = StoredEventAccess::Make(it.raw_key(), it.value(), s.name, o.id);
      if (!ev) continue;  // records failing verification: see `jaiminho-tool verify`
      if (range == EventState::kPending && state == EventState::kSent) {
        const internal::PendingKeyState p =
            internal::ClassifyPendingKey((*ev)->id.seq, delivered.cursor, delivered.runs);
        if (p.kind != internal::PendingKeyState::kSent) continue;
        StoredEventAccess::MarkSent(*ev, FromMicros(p.sent_at_us));
      }
      out.push_back(std::move(*ev));
    }
    return it.status(fmt::format("list stream '{}'", s.name));
  };
  if (state == EventState::kPending) {
    JM_RETURN_IF_ERROR(read(EventState::kPending, {.from_seq = delivered.cursor}));
  } else if (state == EventState::kSent) {
    JM_RETURN_IF_ERROR(read(EventState::kPending, {.end_seq = delivered.cursor}));
    JM_RETURN_IF_ERROR(read(EventState::kSent, {}));
  } else {
    JM_RETURN_IF_ERROR(read(state, {}));
  }
  if (state == EventState::kRetrying || state == EventState::kSent) {
    std::sort(out.begin(), out.end(), [](const StoredEvent& a, const StoredEvent& b) { return a->id.seq < b->id.seq; });
  }
  if (out.size() > limit) out.erase(out.begin() + static_cast<std::ptrdiff_t>(limit), out.end());
  return out;
}

Result<StoredEvent> Outbox::FindEvent(const Stream& stream, uint64_t seq) const {
  StreamState& s = StreamAccess::Of(stream);
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("FindEvent"));
  JM_RETURN_IF_ERROR(impl_->CheckOwned(s, "FindEvent"));
  JM_ASSIGN_OR_RETURN(Located l, Locate(*impl_, s, seq));
  auto ev = StoredEventAccess::Make(l.key.view(), l.raw, s.name, impl_->id);
  if (!ev) {
    return MakeError(ErrorCode::kCorruption, fmt::format("stream '{}' seq {}: {}", s.name, seq, ev.error().message()));
  }
  if (l.state == EventState::kSent && l.key.view()[0] == internal::kPendingTag) {
    StoredEventAccess::MarkSent(*ev, FromMicros(l.sent_at_us));
  }
  return ev;
}

Status Outbox::Requeue(const Stream& stream, uint64_t seq, std::string_view reason, std::string_view actor) {
  OutboxImpl& o = *impl_;
  StreamState& s = StreamAccess::Of(stream);
  JM_ASSIGN_OR_RETURN(auto guard, o.Enter("Requeue"));
  JM_RETURN_IF_ERROR(o.CheckOwned(s, "Requeue"));
  internal::MutexLock dl(s.delivery_mu);
  JM_ASSIGN_OR_RETURN(Located l, Locate(o, s, seq));
  if (l.state == EventState::kSent) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("stream '{}' seq {} was already sent", s.name, seq));
  }
  internal::AlignedArena arena;
  JM_ASSIGN_OR_RETURN(auto d, DecodeLocated(arena, l, s, o, seq));
  const Timestamp now = o.Now();
  if (l.state == EventState::kPending && !internal::IsBlockedHead(d.event, now)) {
    // Nothing holds it back: the relay delivers it in its turn.
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("stream '{}' seq {} is pending and not blocked ({} failed attempts): requeue takes a "
                                 "parked, retrying or blocked event; the relay delivers this one in its turn",
                                 s.name, seq, d.event.attempts));
  }
  const Action action("requeue", "requeued", reason, actor, now);
  internal::DeliveryBatch batch(o, s, internal::Source::kOperator);
  batch.Reset(s.config(), now);
  if (l.state == EventState::kPending) {
    // A blocked keep-order head: reset it in place, the stream resumes with it.
    internal::EnvelopeFields f = internal::FieldsOf(d);
    f.attempts = 0;
    f.next_attempt_at = 0;
    f.note = action.note;
    internal::HistoryUpdate history;
    internal::AppendHistory(d.event, action.entry, &history);
    f.history = history.entries;
    f.history_dropped = history.dropped;
    std::string bytes;
    internal::EncodeEnvelope(f, &bytes);
    batch.batch().Put(s.cf, rocksdb::Slice(l.key.bytes, l.key.size), bytes);
  } else {
    batch.Requeue(d, action.note, action.entry);
    batch.RemoveKey(l.key.view(), false);
  }
  JM_RETURN_IF_ERROR(batch.Commit());
  Wake(o, s);
  return {};
}

Result<size_t> Outbox::RequeueAllParked(const Stream& stream, std::string_view reason, std::string_view actor) {
  OutboxImpl& o = *impl_;
  StreamState& s = StreamAccess::Of(stream);
  JM_ASSIGN_OR_RETURN(auto guard, o.Enter("RequeueAllParked"));
  JM_RETURN_IF_ERROR(o.CheckOwned(s, "RequeueAllParked"));
  internal::MutexLock dl(s.delivery_mu);
  internal::StateRange it(o.db.get(), s.cf, EventState::kParked);
  internal::AlignedArena arena;
  internal::DeliveryBatch batch(o, s, internal::Source::kOperator);
  batch.Reset(s.config(), o.Now());
  const Action action("requeue", "requeued", reason, actor, o.Now());
  size_t n = 0;
  std::vector<internal::DecodedEnvelope> keep;
  for (; it.Valid(); it.Next()) {
    internal::CheckedRecord r = internal::CheckRecord(s.name, it.raw_key(), it.value(), o.id, arena);
    if (!r.ok()) continue;  // a record failing the check stays parked
    batch.Requeue(*r.envelope, action.note, action.entry);
    batch.RemoveKey(it.raw_key(), false);
    ++n;
    if (batch.batch().Count() >= 1024) {
      JM_RETURN_IF_ERROR(batch.Commit());
      arena.Reset();
      batch.Reset(s.config(), o.Now());
    }
  }
  JM_RETURN_IF_ERROR(it.status(fmt::format("list parked of stream '{}'", s.name)));
  JM_RETURN_IF_ERROR(batch.Commit());
  if (n > 0) Wake(o, s);
  return n;
}

Status Outbox::Skip(const Stream& stream, uint64_t seq, std::string_view reason, std::string_view actor) {
  OutboxImpl& o = *impl_;
  StreamState& s = StreamAccess::Of(stream);
  JM_ASSIGN_OR_RETURN(auto guard, o.Enter("Skip"));
  JM_RETURN_IF_ERROR(o.CheckOwned(s, "Skip"));
  if (reason.empty()) return MakeError(ErrorCode::kInvalidArgument, "Skip: a reason is required");
  internal::MutexLock dl(s.delivery_mu);
  JM_ASSIGN_OR_RETURN(Located l, Locate(o, s, seq));
  if (l.state != EventState::kPending && l.state != EventState::kRetrying) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("stream '{}' seq {} is {}, not pending", s.name, seq, ToString(l.state)));
  }
  internal::AlignedArena arena;
  internal::DeliveryBatch batch(o, s, internal::Source::kOperator);
  batch.Reset(s.config(), o.Now());
  const Action action("skip", "skipped", reason, actor, o.Now());
  auto d = DecodeLocated(arena, l, s, o, seq);
  if (d) {
    batch.Park(*d, action.note, nullptr, &action.entry);
  } else {
    batch.ParkCorrupt(seq, l.raw, d.error(), &action.entry);
  }
  batch.RemoveKey(l.key.view(), false);
  JM_RETURN_IF_ERROR(batch.Commit());
  Wake(o, s);
  return {};
}

}  // namespace jaiminho
