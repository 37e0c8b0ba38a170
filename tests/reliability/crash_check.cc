#include "reliability/crash_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <filesystem>

#include "storage/delivery_log.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/meta.h"
#include "storage/open.h"

namespace jaiminho::testing::crash {

Result<DbContents> ReadDatabase(const std::string& path) {
  DbContents out;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) return out;
  auto ro = internal::OpenReadOnly(path);
  if (!ro) return tl::unexpected(ro.error());
  out.exists = true;
  internal::AlignedArena arena;
  for (size_t i = 0; i < (*ro)->names.size(); ++i) {
    const std::string& family = (*ro)->names[i];
    std::unique_ptr<rocksdb::Iterator> it((*ro)->db->NewIterator(rocksdb::ReadOptions(), (*ro)->handles[i]));
    if (family == kBusinessFamily) {
      for (it->Seek(std::string(kBusinessPrefix)); it->Valid() && it->key().starts_with(std::string(kBusinessPrefix));
           it->Next()) {
        out.business[it->key().ToString().substr(kBusinessPrefix.size())] = it->value().ToString();
      }
    } else if (auto stream = internal::StreamOfFamily(family)) {
      // Format 2: delivered events stay under their pending key below the
      // cursor (storage/delivery_log.h): read as sent, or as deleted when no
      // run covers them (delete_after_send).
      uint64_t cursor = 0;
      if (auto m = (*ro)->snapshot.streams.find(*stream); m != (*ro)->snapshot.streams.end()) cursor = m->second.cursor;
      auto delivered = internal::ReadDelivered((*ro)->db.get(), (*ro)->handles[i], *stream, cursor);
      if (!delivered) return tl::unexpected(delivered.error());
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        if (it->key().starts_with(rocksdb::Slice(&internal::kRunTag, 1))) {
          if (!internal::DecodeRun(it->key().ToStringView(), it->value().ToStringView())) {
            DbRecord bad;
            bad.corrupt = true;
            out.events[EventRef{*stream, 0}] = bad;
          }
          continue;
        }
        auto key = internal::DecodeKey(it->key().ToStringView());
        DbRecord rec;
        if (key && key->state == EventState::kPending) {
          auto p = internal::ClassifyPendingKey(key->seq, delivered->cursor, delivered->runs);
          if (p.kind == internal::PendingKeyState::kGone) continue;
          if (p.kind == internal::PendingKeyState::kSent) key->state = EventState::kSent;
        }
        if (!key) {
          rec.corrupt = true;
          out.events[EventRef{*stream, 0}] = rec;
          continue;
        }
        rec.state = internal::TagOf(key->state);
        arena.Reset();
        auto env = internal::DecodeEnvelope(arena.Copy(it->value().ToStringView()));
        if (!env || env->event.id.seq != key->seq || env->stream != *stream) {
          rec.corrupt = true;
        } else {
          rec.payload = std::string(env->event.payload);
        }
        out.events[EventRef{*stream, key->seq}] = std::move(rec);
      }
    } else {
      continue;
    }
    if (!it->status().ok()) {
      return MakeError(ErrorCode::kIOError, fmt::format("read {} of {}: {}", family, path, it->status().ToString()));
    }
  }
  return out;
}

std::string CheckReport::Summary() const {
  std::string out = fmt::format("{} violation(s)", violation_count);
  for (const auto& v : violations)
    out += "\n  " + v;
  return out;
}

namespace {

class Checker {
 public:
  Checker(const Logs& logs, const DbContents& db, const CheckOptions& o) : logs_(logs), db_(db), o_(o) {}

  CheckReport Run() {
    r_.deliveries = logs_.deliveries.size();
    if (logs_.malformed_lines > 0) Bad(fmt::format("{} malformed log lines (a harness bug)", logs_.malformed_lines));
    IndexDeliveries();
    IndexDatabase();
    IndexDrops();
    CheckCommits();
    CheckAcks();
    CheckDuplicates();
    for (const auto& s : o_.keep_order_streams)
      CheckOrder(s);
    if (o_.final) {
      for (const auto& [id, rec] : db_.events) {
        if (rec.state != internal::kSentTag) {
          Bad(fmt::format("{} is left in state '{}' after the drain", ToString(id), rec.state));
        }
      }
    }
    return std::move(r_);
  }

 private:
  void Bad(std::string what) {
    if (r_.violations.size() < 50) r_.violations.push_back(std::move(what));
    ++r_.violation_count;
  }

  void IndexDeliveries() {
    for (const Delivery& d : logs_.deliveries) {
      auto [it, inserted] = delivered_at_.emplace(d.id, d.payload);
      if (!inserted && it->second != d.payload) {
        Bad(fmt::format("seq reused: {} delivered as {} and as {}", ToString(d.id), it->second, d.payload));
      }
      delivered_.insert(d.payload);
      delivered_ref_.emplace(d.payload, d.id);
      if (!ParsePayload(d.payload))
        Bad(fmt::format("delivered {} has a payload of no commit: {}", ToString(d.id), d.payload));
    }
  }

  void IndexDatabase() {
    for (const auto& [id, rec] : db_.events) {
      if (rec.corrupt) {
        Bad(fmt::format("unreadable record in the database at {}", ToString(id)));
        continue;
      }
      if (auto it = delivered_at_.find(id); it != delivered_at_.end() && it->second != rec.payload) {
        Bad(fmt::format("seq reused: the database holds {} at {}, delivered as {}", rec.payload, ToString(id),
                        it->second));
      }
      auto [it, inserted] = stored_.emplace(rec.payload, id);
      if (!inserted) {
        Bad(fmt::format("event {} is stored twice: at {} and {}", rec.payload, ToString(it->second), ToString(id)));
      }
    }
  }

  void CheckCommits() {
    for (const auto& [commit, value] : db_.business) {
      int n = 0;
      auto pr = std::from_chars(value.data(), value.data() + value.size(), n);
      if (pr.ec != std::errc() || n < 1) {
        Bad(fmt::format("business value of {} is not an event count: '{}'", commit, value));
        continue;
      }
      ++r_.commits_present;
      for (int k = 0; k < n; ++k) {
        ++r_.events_committed;
        std::string p = EventPayload(commit, k, n);
        bool stored = stored_.contains(p), delivered = delivered_.contains(p);
        if (!stored && !delivered) {
          auto ref = acked_ref_.find(p);
          if (ref != acked_ref_.end() ? Excused(ref->second) : ExcusedUnattributed()) continue;
          Bad(fmt::format("torn commit: {} has its business write but event {} is neither stored nor delivered{}",
                          commit, p, ref != acked_ref_.end() ? Why(ref->second) : ""));
        } else if (o_.final && !delivered) {
          Bad(fmt::format("at-least-once: committed event {} was never delivered", p));
        }
      }
    }
    auto owner = [&](const std::string& payload, std::string_view where) {
      auto id = ParsePayload(payload);
      if (!id) return;  // reported elsewhere
      auto b = db_.business.find(id->commit);
      if (b == db_.business.end()) {
        Bad(fmt::format("{} event {} without its commit's business write", where, payload));
      } else if (b->second != std::to_string(id->count)) {
        Bad(fmt::format("{} event {} disagrees with its commit's business value '{}'", where, payload, b->second));
      }
    };
    for (const auto& [payload, id] : stored_)
      owner(payload, "stored");
    for (const auto& payload : delivered_)
      owner(payload, "delivered");
  }

  // Rules D1-D4 (crash_check.h): what the drop-oldest streams may be missing.
  void IndexDrops() {
    for (const Ack& a : logs_.acks) {
      acked_commits_.insert(a.commit);
      for (size_t k = 0; k < a.events.size(); ++k)
        acked_ref_.emplace(EventPayload(a.commit, static_cast<int>(k), a.count), a.events[k]);
    }
    for (const auto& [id, rec] : db_.events) {
      if (rec.corrupt || (rec.state != internal::kPendingTag && rec.state != internal::kRetryTag)) continue;
      auto [it, inserted] = lowest_waiting_.emplace(id.stream, id.seq);
      if (!inserted) it->second = std::min(it->second, id.seq);
    }
    for (const Drop& d : logs_.drops) {
      r_.drops_reported += d.count;
      if (!o_.drop_oldest_streams.contains(d.stream)) {
        Bad(fmt::format("drop of {}:{}..{} reported in stream {}, which has no drop-oldest quota", d.stream, d.first,
                        d.last, d.stream));
        continue;
      }
      if (d.first > d.last || d.count == 0 || d.count > d.last - d.first + 1) {
        Bad(fmt::format("malformed drop report: {} events of {}:{}..{}", d.count, d.stream, d.first, d.last));
        continue;
      }
      if (auto w = lowest_waiting_.find(d.stream); w != lowest_waiting_.end() && w->second <= d.last) {
        Bad(
            fmt::format("drop-oldest {}: seq {} is still waiting for delivery although process {} reported dropping "
                        "{}..{} (the oldest undelivered go first)",
                        d.stream, w->second, d.generation, d.first, d.last));
      }
      reported_[d.stream].push_back(ReportedDrop{&d, 0});
    }
    if (o_.drop_oldest_streams.empty()) return;
    // The present, unacknowledged commits: where their events are.
    for (const auto& [commit, value] : db_.business) {
      if (acked_commits_.contains(commit)) continue;
      int n = 0;
      auto pr = std::from_chars(value.data(), value.data() + value.size(), n);
      if (pr.ec != std::errc()) continue;  // reported by CheckCommits
      for (int k = 0; k < n; ++k) {
        std::string p = EventPayload(commit, k, n);
        const EventRef* at = nullptr;
        if (auto s = stored_.find(p); s != stored_.end()) at = &s->second;
        if (auto d = delivered_ref_.find(p); at == nullptr && d != delivered_ref_.end()) at = &d->second;
        if (at == nullptr) {
          unacked_missing_ = true;
          continue;
        }
        auto [it, inserted] = unacked_highest_.emplace(at->stream, at->seq);
        if (!inserted) it->second = std::max(it->second, at->seq);
      }
    }
  }

  // Whether a missing event at `ref` was dropped (D1 or D2); each ref is judged once.
  bool Excused(const EventRef& ref) {
    if (auto c = excused_.find(ref); c != excused_.end()) return c->second;
    bool ok = false;
    if (o_.drop_oldest_streams.contains(ref.stream)) {
      if (auto r = reported_.find(ref.stream); r != reported_.end()) {
        for (ReportedDrop& d : r->second) {
          if (ref.seq < d.drop->first || ref.seq > d.drop->last) continue;
          if (++d.missing > d.drop->count) {
            Bad(fmt::format(
                "drop-oldest {}: process {} reported {} events dropped in {}..{}, but {} events of that "
                "range are missing (last: {})",
                ref.stream, d.drop->generation, d.drop->count, d.drop->first, d.drop->last, d.missing, ToString(ref)));
          }
          ++r_.missing_reported;
          ok = true;
          break;
        }
      }
      if (!ok && OlderThanEveryWaiting(ref) && UnacknowledgedCommitAbove(ref)) {
        ++r_.missing_unreported;
        ok = true;
      }
    }
    excused_.emplace(ref, ok);
    return ok;
  }

  bool ExcusedUnattributed() {
    if (o_.drop_oldest_streams.empty()) return false;
    ++r_.missing_unattributed;
    return true;
  }

  bool OlderThanEveryWaiting(const EventRef& ref) const {
    auto w = lowest_waiting_.find(ref.stream);
    return w == lowest_waiting_.end() || w->second > ref.seq;
  }
  bool UnacknowledgedCommitAbove(const EventRef& ref) const {
    auto u = unacked_highest_.find(ref.stream);
    return unacked_missing_ || (u != unacked_highest_.end() && u->second > ref.seq);
  }

  // Why a missing event of a drop-oldest stream is not excused (empty for other streams).
  std::string Why(const EventRef& ref) const {
    if (!o_.drop_oldest_streams.contains(ref.stream)) return "";
    std::string why = "; in no reported drop";
    if (!OlderThanEveryWaiting(ref)) {
      why += fmt::format(", and an older seq {} of its stream is still waiting (a drop takes the oldest first)",
                         lowest_waiting_.at(ref.stream));
    }
    if (!UnacknowledgedCommitAbove(ref)) why += ", and no unacknowledged commit could have dropped it unreported";
    return why;
  }

  void CheckAcks() {
    std::map<EventRef, std::string> acked;
    for (const Ack& a : logs_.acks) {
      ++r_.commits_acked;
      if (!db_.business.contains(a.commit))
        Bad(fmt::format("acknowledged commit {} lost its business write", a.commit));
      if (static_cast<int>(a.events.size()) != a.count) {
        Bad(fmt::format("acknowledged commit {} has {} receipt ids for {} events", a.commit, a.events.size(), a.count));
      }
      for (size_t k = 0; k < a.events.size(); ++k) {
        const EventRef& ref = a.events[k];
        std::string expected = EventPayload(a.commit, static_cast<int>(k), a.count);
        auto [it, inserted] = acked.emplace(ref, expected);
        if (!inserted)
          Bad(fmt::format("seq reused: {} acknowledged for {} and for {}", ToString(ref), it->second, expected));
        auto stored = db_.events.find(ref);
        auto delivered = delivered_at_.find(ref);
        if (stored != db_.events.end() && !stored->second.corrupt && stored->second.payload != expected) {
          Bad(fmt::format("{} holds {}, but its receipt says {}", ToString(ref), stored->second.payload, expected));
        }
        if (delivered != delivered_at_.end() && delivered->second != expected) {
          Bad(fmt::format("{} was delivered as {}, but its receipt says {}", ToString(ref), delivered->second,
                          expected));
        }
        if (stored == db_.events.end() && delivered == delivered_at_.end() && !Excused(ref)) {
          Bad(fmt::format("acknowledged event {} ({}) lost: neither stored nor delivered{}", ToString(ref), expected,
                          Why(ref)));
        }
      }
    }
  }

  void CheckDuplicates() {
    std::map<EventRef, int> recorded;  // the first generation that reported the outcome written
    for (const Outcome& oc : logs_.outcomes)
      recorded.emplace(oc.id, oc.generation);
    std::set<EventRef> this_generation, earlier;
    int generation = INT_MIN;
    for (const Delivery& d : logs_.deliveries) {
      if (d.generation != generation) {
        earlier.insert(this_generation.begin(), this_generation.end());
        this_generation.clear();
        generation = d.generation;
      }
      if (!this_generation.insert(d.id).second) {
        Bad(fmt::format("{} delivered twice by process {} (no crash in between)", ToString(d.id), d.generation));
      }
      if (earlier.contains(d.id)) ++r_.redeliveries;
      if (auto it = recorded.find(d.id); it != recorded.end() && it->second < d.generation) {
        Bad(fmt::format("{} delivered again by process {} although process {} had written its outcome", ToString(d.id),
                        d.generation, it->second));
      }
    }
  }

  void CheckOrder(const std::string& stream) {
    std::vector<uint64_t> delivered;  // distinct, in first-delivery order
    std::map<uint64_t, size_t> position;
    // Highest seq of the stream whose outcome a process reported, per generation.
    std::map<int, uint64_t> recorded_by_generation;
    for (const Outcome& oc : logs_.outcomes) {
      if (oc.id.stream != stream) continue;
      uint64_t& m = recorded_by_generation[oc.generation];
      m = std::max(m, oc.id.seq);
    }
    auto recorded_before = [&](int generation) {
      uint64_t m = 0;
      for (auto it = recorded_by_generation.begin(); it != recorded_by_generation.end() && it->first < generation; ++it)
        m = std::max(m, it->second);
      return m;
    };

    size_t i = 0;
    const auto& ds = logs_.deliveries;
    while (i < ds.size()) {
      const int generation = ds[i].generation;
      std::vector<uint64_t> x;
      for (; i < ds.size() && ds[i].generation == generation; ++i) {
        if (ds[i].id.stream == stream) x.push_back(ds[i].id.seq);
      }
      if (x.empty()) continue;
      bool ok = true;
      for (size_t k = 1; k < x.size() && ok; ++k) {
        if (x[k] <= x[k - 1]) {
          Bad(fmt::format("keep-order {}: process {} delivered seq {} after seq {}", stream, generation, x[k],
                          x[k - 1]));
          ok = false;
        }
      }
      if (!ok) continue;
      const uint64_t high = delivered.empty() ? 0 : delivered.back();
      size_t j = 0;
      while (j < x.size() && x[j] <= high)
        ++j;
      if (j > 0) {
        auto p = position.find(x[0]);
        if (p == position.end()) {
          Bad(fmt::format("keep-order {}: process {} delivered seq {} after seq {} (out of order)", stream, generation,
                          x[0], high));
          continue;
        }
        const size_t tail = delivered.size() - p->second;
        for (size_t k = 0; k < j; ++k) {
          if (p->second + k >= delivered.size() || delivered[p->second + k] != x[k]) {
            Bad(fmt::format("keep-order {}: process {} re-delivered seq {} out of the run that began at seq {}", stream,
                            generation, x[k], x[0]));
            ok = false;
            break;
          }
        }
        if (ok && j < x.size() && j != tail) {
          Bad(fmt::format(
              "keep-order {}: process {} re-delivered {} of the {} events from seq {}, then went on to seq {}", stream,
              generation, j, tail, x[0], x[j]));
        }
        if (tail > o_.max_inflight) {
          Bad(
              fmt::format("keep-order {}: process {} re-delivered a run of {} events from seq {}, more than the {} "
                          "a relay has in flight",
                          stream, generation, tail, x[0], o_.max_inflight));
        }
        if (uint64_t rec = recorded_before(generation); x[0] <= rec) {
          Bad(fmt::format("keep-order {}: process {} went back to seq {} although the outcome of seq {} was written",
                          stream, generation, x[0], rec));
        }
      }
      for (size_t k = j; k < x.size(); ++k) {
        position[x[k]] = delivered.size();
        delivered.push_back(x[k]);
      }
    }
  }

  const Logs& logs_;
  const DbContents& db_;
  const CheckOptions& o_;
  CheckReport r_;
  std::map<EventRef, std::string> delivered_at_;   // (stream, seq) -> payload
  std::set<std::string> delivered_;                // payloads
  std::map<std::string, EventRef> stored_;         // payload -> (stream, seq)
  std::map<std::string, EventRef> delivered_ref_;  // payload -> (stream, seq)
  // Drop-oldest (IndexDrops).
  struct ReportedDrop {
    const Drop* drop;
    uint64_t missing;  // missing events it excused
  };
  std::set<std::string> acked_commits_;
  std::map<std::string, EventRef> acked_ref_;       // payload -> its receipt's (stream, seq)
  std::map<std::string, uint64_t> lowest_waiting_;  // stream -> lowest seq stored pending or retrying
  std::map<std::string, std::vector<ReportedDrop>> reported_;
  std::map<std::string, uint64_t> unacked_highest_;  // stream -> highest seq of a present unacknowledged commit
  bool unacked_missing_ = false;                     // a present unacknowledged commit has a missing event
  std::map<EventRef, bool> excused_;
};

}  // namespace

CheckReport Check(const Logs& logs, const DbContents& db, const CheckOptions& options) {
  return Checker(logs, db, options).Run();
}

}  // namespace jaiminho::testing::crash
