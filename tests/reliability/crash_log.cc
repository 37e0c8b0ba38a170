#include "reliability/crash_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace jaiminho::testing::crash {
namespace {

// Every complete line ends with this token; a line without it was torn.
constexpr std::string_view kEnd = " $";

[[noreturn]] void Die(const std::string& what) {
  std::perror(what.c_str());
  std::abort();
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

template <class T>
bool ParseNumber(std::string_view s, T* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool ParseRef(std::string_view s, EventRef* out) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  out->stream = std::string(s.substr(0, colon));
  return ParseNumber(s.substr(colon + 1), &out->seq);
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    out.push_back(line);
  return out;
}

}  // namespace

DurableLog::DurableLog(const std::string& path, bool sync) : sync_(sync) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) Die("open " + path);
}

DurableLog::~DurableLog() {
  if (fd_ >= 0) ::close(fd_);
}

void DurableLog::Append(std::string_view line) {
  std::string l;
  l.reserve(line.size() + kEnd.size() + 1);
  l.append(line).append(kEnd).push_back('\n');
  // One write(2) per line: O_APPEND keeps concurrent lines whole.
  ssize_t n = ::write(fd_, l.data(), l.size());
  if (n != static_cast<ssize_t>(l.size())) Die("append to log");
  if (sync_ && ::fdatasync(fd_) != 0) Die("fdatasync log");
}

bool RepairTornTail(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  bool torn = false;
  off_t size = ::lseek(fd, 0, SEEK_END);
  char last = '\n';
  if (size > 0 && ::pread(fd, &last, 1, size - 1) == 1 && last != '\n') {
    torn = true;
    if (::write(fd, "\n", 1) != 1 || ::fdatasync(fd) != 0) Die("repair " + path);
  }
  ::close(fd);
  return torn;
}

std::string ToString(const EventRef& r) {
  return r.stream + ":" + std::to_string(r.seq);
}

std::string EventPayload(std::string_view commit, int index, int count) {
  return std::string(commit) + "#" + std::to_string(index) + "/" + std::to_string(count);
}

std::optional<Identity> ParsePayload(std::string_view payload) {
  size_t hash = payload.rfind('#');
  size_t slash = payload.rfind('/');
  if (hash == std::string_view::npos || slash == std::string_view::npos || slash < hash || hash == 0) {
    return std::nullopt;
  }
  Identity id;
  id.commit = std::string(payload.substr(0, hash));
  if (!ParseNumber(payload.substr(hash + 1, slash - hash - 1), &id.index)) return std::nullopt;
  if (!ParseNumber(payload.substr(slash + 1), &id.count)) return std::nullopt;
  if (id.count < 1 || id.index < 0 || id.index >= id.count) return std::nullopt;
  return id;
}

std::string DeliveryLine(std::string_view stream, uint64_t seq, std::string_view type, std::string_view payload) {
  std::ostringstream o;
  o << "D " << stream << ' ' << seq << ' ' << type << ' ' << payload;
  return o.str();
}

std::string OutcomeLine(std::string_view stream, uint64_t seq, std::string_view payload) {
  std::ostringstream o;
  o << "O " << stream << ' ' << seq << ' ' << payload;
  return o.str();
}

std::string AckLine(std::string_view commit, int count, const std::vector<EventRef>& events) {
  std::ostringstream o;
  o << "A " << commit << ' ' << count;
  for (const auto& e : events)
    o << ' ' << ToString(e);
  return o.str();
}

std::string DropLine(std::string_view stream, uint64_t first, uint64_t last, uint64_t count) {
  std::ostringstream o;
  o << "X " << stream << ' ' << first << ' ' << last << ' ' << count;
  return o.str();
}

std::string MarkerLine(int generation) {
  return "G " + std::to_string(generation);
}

Logs ReadLogs(const std::string& dir) {
  Logs logs;
  auto parse = [&](const std::string& file, auto&& on_fields) {
    int generation = -1;
    for (const std::string& raw : Lines(dir + "/" + file)) {
      std::string_view line = raw;
      if (line.empty()) continue;
      if (!line.ends_with(kEnd)) {
        ++logs.torn_lines;
        continue;
      }
      line.remove_suffix(kEnd.size());
      auto f = Split(line);
      if (f.size() == 2 && f[0] == "G" && ParseNumber(f[1], &generation)) continue;
      if (!on_fields(f, generation)) ++logs.malformed_lines;
    }
  };
  parse(std::string(kDeliveriesLog), [&](const std::vector<std::string_view>& f, int gen) {
    Delivery d;
    d.generation = gen;
    if (f.size() != 5 || f[0] != "D" || !ParseNumber(f[2], &d.id.seq)) return false;
    d.id.stream = std::string(f[1]);
    d.type = std::string(f[3]);
    d.payload = std::string(f[4]);
    logs.deliveries.push_back(std::move(d));
    return true;
  });
  parse(std::string(kOutcomesLog), [&](const std::vector<std::string_view>& f, int gen) {
    Outcome o;
    o.generation = gen;
    if (f.size() != 4 || f[0] != "O" || !ParseNumber(f[2], &o.id.seq)) return false;
    o.id.stream = std::string(f[1]);
    o.payload = std::string(f[3]);
    logs.outcomes.push_back(std::move(o));
    return true;
  });
  parse(std::string(kDropsLog), [&](const std::vector<std::string_view>& f, int gen) {
    Drop d;
    d.generation = gen;
    if (f.size() != 5 || f[0] != "X" || !ParseNumber(f[2], &d.first) || !ParseNumber(f[3], &d.last) ||
        !ParseNumber(f[4], &d.count)) {
      return false;
    }
    d.stream = std::string(f[1]);
    logs.drops.push_back(std::move(d));
    return true;
  });
  parse(std::string(kAcksLog), [&](const std::vector<std::string_view>& f, int) {
    Ack a;
    if (f.size() < 3 || f[0] != "A" || !ParseNumber(f[2], &a.count)) return false;
    a.commit = std::string(f[1]);
    for (size_t i = 3; i < f.size(); ++i) {
      EventRef r;
      if (!ParseRef(f[i], &r)) return false;
      a.events.push_back(std::move(r));
    }
    logs.acks.push_back(std::move(a));
    return true;
  });
  return logs;
}

}  // namespace jaiminho::testing::crash
