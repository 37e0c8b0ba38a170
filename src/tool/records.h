// Reading and verifying the records of stream column families, for `dump` and
// `verify` (one definition of "a good record", so both agree).
//
//   internal::AlignedArena arena;
//   tool::Record r = tool::CheckRecord("fills", key, value, db_id, arena);
//   if (!r.ok()) std::cout << r.error;
//
// Thread-safety: functions; an AlignedArena belongs to one thread.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/event.h"
#include "sign/signer.h"
#include "storage/delivery_log.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/open.h"

namespace jaiminho::tool {

// One stored record of a stream family, checked.
struct Record {
  std::string_view stream;
  std::string_view raw_key;
  std::string_view raw_value;
  // The decoded key; nullopt when the key is none of the forms of storage/keys.h.
  std::optional<internal::DecodedKey> key;
  // The event (views into the arena and `stream`), set when the record verified.
  std::optional<Event> event;
  // Why the record failed verification; empty when it is good.
  std::string error;

  bool ok() const { return error.empty(); }
  // "pending", "retrying", "sent", "parked", or "corrupt" when it failed verification.
  std::string_view state_name() const;
};

// Verifies one record stored in stream `stream`'s family with
// internal::CheckRecord (storage/stream_reader.h, the check the relay applies
// too): the key's form, the envelope (FlatBuffers verification and field
// checks of DecodeEnvelope), that the envelope's seq and stream match the key
// and the family, that a retry key's due time is the envelope's
// next_attempt_at, that a sent record has sent_at, and the record's
// authenticity. The event's views point into `arena` (copied there for
// alignment) and `stream`. With `signer` (keys given to the tool), signatures
// are checked too.
Record CheckRecord(std::string_view stream, std::string_view key, std::string_view value, const DatabaseId& db,
                   internal::AlignedArena& arena, const internal::Signer* signer = nullptr);

// Checks the envelope's signature and key id with `signer` (the keys given to
// the tool with --keys); without a signer every record passes. An error names
// what failed (the same check CheckRecord applies).
Status VerifyAuthenticity(const internal::DecodedEnvelope& envelope, std::string_view stream,
                          const internal::Signer* signer);

// Which records of a stream family a scan visits.
struct RecordFilter {
  // States to visit (EventState values); empty = all. Records failing
  // verification are visited only when `corrupt` is set (or no state is given).
  std::vector<EventState> states{};
  bool corrupt = false;
  // Only records with seq >= from_seq (records whose seq is unknown are skipped
  // when from_seq > 0).
  uint64_t from_seq = 0;
  // Only records with seq <= to_seq (records whose seq is unknown are skipped
  // when set).
  std::optional<uint64_t> to_seq{};
  // Only events of this type (corrupt records have none and are skipped).
  std::string type{};
  // Only events whose key is this (corrupt records are skipped when set).
  std::optional<std::string> key{};
  // Only events created at or after `since_us` and before `until_us` (created_at,
  // microseconds since the epoch; corrupt records are skipped when either is set).
  std::optional<int64_t> since_us{};
  std::optional<int64_t> until_us{};

  bool Wants(const Record& r) const;
};

// What the relay has delivered in `stream` of a database opened by the tool:
// the cursor of its meta snapshot and its delivery log.
Result<internal::DeliveredView> DeliveredOf(const internal::ReadOnlyDb& db, const std::string& stream);

// Visits the records of `cf` (stream `stream`) in key order; `visit` returns
// false to stop. Delivered events under pending keys are visited as sent, or
// not at all when no run covers them (format 2, storage/delivery_log.h, with
// `delivered` from ReadDelivered); delivery-log records are checked and
// visited only when malformed. Reading errors (not bad records) fail with the
// stream named.
Status ScanRecords(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream, const DatabaseId& db_id,
                   const internal::DeliveredView& delivered, const RecordFilter& filter,
                   const std::function<bool(const Record&)>& visit, const internal::Signer* signer = nullptr);

// ScanRecords in seq order across the states of the stream (what `dump`
// prints): the parked, pending and sent key ranges are merged by seq, and the
// retrying events (keyed by due time) are put in seq order first (their keys
// are held in memory while the stream is visited: the retrying events are the
// in-flight failures of publish-on-commit events). Records without a seq (a key
// of no known form, a malformed delivery-log record) come after the stream's
// events. `filter.from_seq`/`to_seq` bound the ranges read.
Status ScanRecordsInSeqOrder(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                             const DatabaseId& db_id, const internal::DeliveredView& delivered,
                             const RecordFilter& filter, const std::function<bool(const Record&)>& visit,
                             const internal::Signer* signer = nullptr);

}  // namespace jaiminho::tool
