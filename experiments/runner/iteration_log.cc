// SPDX-License-Identifier: Apache-2.0
// Writing and reading iterations.csv (grammar in iteration_log.h). Numbers are printed in
// their shortest round-trip form, so a row read back is the row that was written.
#include "experiments/runner/iteration_log.h"

#include <charconv>
#include <fstream>
#include <iterator>
#include <string_view>

#include <fmt/format.h>

#include "core/error.h"
#include "core/retention.h"

namespace kvlab::experiments {
namespace {

constexpr const char* kHeader =
    "replica,iteration,start_s,predicted_s,weights_s,kv_s,compute_s,communication_s,overhead_s,weight_bytes,"
    "kv_bytes,flops,decode_seqs,prefill_seqs,prefill_tokens,sampled_tokens,swap_bytes,batch\n";
constexpr int kColumns = 18;

char kind_letter(const sim::SequenceWork& s) {
  if (s.decode) return static_cast<char>(LoggedKind::kDecode);
  return static_cast<char>(s.samples ? LoggedKind::kLastPrefill : LoggedKind::kPrefill);
}

[[noreturn]] void fail(const std::string& path, int line, const std::string& message) {
  core::Diagnostic d;
  d.file = path;
  d.line = line;
  d.message = message;
  throw core::ConfigError(std::vector<core::Diagnostic>{d});
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// One batch entry: <kind><request>:<context>+<new>[/<g0>,<g1>,…]; "" or why it is malformed.
std::string parse_entry(std::string_view entry, LoggedSequence& s) {
  if (entry.size() < 2) return "a batch entry is too short";
  const char kind = entry[0];
  if (kind != 'd' && kind != 'p' && kind != 's') return fmt::format("batch entry \"{}\": kind must be d, p or s", entry);
  s.kind = static_cast<LoggedKind>(kind);
  const size_t colon = entry.find(':'), plus = entry.find('+'), slash = entry.find('/');
  if (colon == std::string_view::npos || plus == std::string_view::npos || plus < colon) {
    return fmt::format("batch entry \"{}\": expected <kind><request>:<context>+<new>", entry);
  }
  const size_t new_end = slash == std::string_view::npos ? entry.size() : slash;
  if (!parse_number(entry.substr(1, colon - 1), s.request) ||
      !parse_number(entry.substr(colon + 1, plus - colon - 1), s.context_tokens) ||
      !parse_number(entry.substr(plus + 1, new_end - plus - 1), s.new_tokens) || s.context_tokens < 0 ||
      s.new_tokens < 1) {
    return fmt::format("batch entry \"{}\": request, context (≥ 0) and new tokens (≥ 1) must be integers", entry);
  }
  if (s.kind == LoggedKind::kDecode && s.new_tokens != 1) return fmt::format("batch entry \"{}\": a decode computes 1 token", entry);
  if (slash != std::string_view::npos) {
    std::string_view rest = entry.substr(slash + 1);
    while (true) {
      const size_t comma = rest.find(',');
      int64_t tokens = 0;
      if (!parse_number(rest.substr(0, comma), tokens) || tokens < 0) {
        return fmt::format("batch entry \"{}\": group lengths must be integers ≥ 0", entry);
      }
      s.group_tokens.push_back(tokens);
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  }
  return "";
}

}  // namespace

IterationLogWriter::IterationLogWriter(const core::KvPlan& plan, TextSink sink) : plan_(plan), sink_(std::move(sink)) {
  for (const core::HeadGroup& g : plan_.groups) write_groups_ |= !std::holds_alternative<core::FullRetention>(g.retention);
  buffer_ = kHeader;
}

void IterationLogWriter::record(const sim::IterationRecord& r) {
  const sim::IterationCost& c = *r.cost;
  const sim::BatchShape& b = *r.batch;
  auto out = std::back_inserter(buffer_);
  // Seconds from integer nanoseconds by division (correctly rounded, so 3511663 ns prints
  // as 0.003511663, not 0.0035116630000000004).
  fmt::format_to(out, "{},{},{:.9f},{},{},{},{},{},{},{},{},{},{},{},{},{},{},", r.replica, r.index,
                 static_cast<double>(r.start_ns) / 1e9, static_cast<double>(c.time_ns) / 1e9, c.weights_s, c.kv_s,
                 c.compute_s, c.communication_s, c.overhead_s, c.weight_bytes, c.kv_bytes, c.flops, b.decode_tokens,
                 b.prefill_seqs, b.prefill_tokens, b.sampled_tokens, b.swap_bytes);
  bool first = true;
  for (const sim::SequenceWork& s : r.sequences) {
    fmt::format_to(out, "{}{}{}:{}+{}", first ? "" : " ", kind_letter(s), s.request_id, s.context_tokens, s.new_tokens);
    first = false;
    if (!write_groups_) continue;
    const int64_t tokens = s.context_tokens + s.new_tokens;
    for (size_t g = 0; g < plan_.groups.size(); ++g) {
      fmt::format_to(out, "{}{}", g == 0 ? "/" : ",", core::retained_tokens(plan_.groups[g].retention, tokens));
    }
  }
  buffer_ += '\n';
  if (buffer_.size() > (1 << 20)) flush();
}

void IterationLogWriter::flush() {
  if (buffer_.empty()) return;
  sink_(buffer_);
  buffer_.clear();
}

LoggedIteration::Mix LoggedIteration::mix() const {
  bool decode = false, prefill = false;
  for (const LoggedSequence& s : sequences) (s.kind == LoggedKind::kDecode ? decode : prefill) = true;
  if (decode && prefill) return Mix::kMixed;
  if (decode) return Mix::kDecodeOnly;
  return prefill ? Mix::kPrefillOnly : Mix::kEmpty;
}

const char* to_string(LoggedIteration::Mix mix) {
  switch (mix) {
    case LoggedIteration::Mix::kDecodeOnly: return "decode-only";
    case LoggedIteration::Mix::kPrefillOnly: return "prefill-only";
    case LoggedIteration::Mix::kMixed: return "mixed";
    case LoggedIteration::Mix::kEmpty: return "empty";
  }
  return "?";
}

std::vector<LoggedIteration> read_iteration_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, 0, "cannot open the iteration log (run `kvlab run --iteration-log` to write one)");
  std::string line;
  int number = 1;
  if (!std::getline(in, line) || line + "\n" != kHeader) fail(path, 1, "not an iterations.csv: the header differs");
  std::vector<LoggedIteration> rows;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    std::vector<std::string_view> f;
    std::string_view rest(line);
    for (int i = 0; i + 1 < kColumns; ++i) {
      const size_t comma = rest.find(',');
      if (comma == std::string_view::npos) break;
      f.push_back(rest.substr(0, comma));
      rest = rest.substr(comma + 1);
    }
    f.push_back(rest);
    if (static_cast<int>(f.size()) != kColumns) fail(path, number, fmt::format("{} columns, expected {}", f.size(), kColumns));
    LoggedIteration it;
    const bool ok = parse_number(f[0], it.replica) && parse_number(f[1], it.iteration) && parse_number(f[2], it.start_s) &&
                    parse_number(f[3], it.predicted_s) && parse_number(f[4], it.weights_s) && parse_number(f[5], it.kv_s) &&
                    parse_number(f[6], it.compute_s) && parse_number(f[7], it.communication_s) &&
                    parse_number(f[8], it.overhead_s) && parse_number(f[9], it.weight_bytes) &&
                    parse_number(f[10], it.kv_bytes) && parse_number(f[11], it.flops) &&
                    parse_number(f[12], it.decode_seqs) && parse_number(f[13], it.prefill_seqs) &&
                    parse_number(f[14], it.prefill_tokens) && parse_number(f[15], it.sampled_tokens) &&
                    parse_number(f[16], it.swap_bytes);
    if (!ok) fail(path, number, "a number column does not parse");
    std::string_view batch = f[17];
    int64_t decodes = 0, prefills = 0, prefill_tokens = 0, sampled = 0;
    while (!batch.empty()) {
      const size_t space = batch.find(' ');
      LoggedSequence s;
      if (const std::string why = parse_entry(batch.substr(0, space), s); !why.empty()) fail(path, number, why);
      if (s.kind == LoggedKind::kDecode && prefills > 0) fail(path, number, "a decode listed after a prefill chunk");
      (s.kind == LoggedKind::kDecode ? decodes : prefills) += 1;
      if (s.kind != LoggedKind::kDecode) prefill_tokens += s.new_tokens;
      sampled += s.samples();
      it.sequences.push_back(std::move(s));
      batch = space == std::string_view::npos ? std::string_view() : batch.substr(space + 1);
    }
    if (decodes != it.decode_seqs || prefills != it.prefill_seqs || prefill_tokens != it.prefill_tokens ||
        sampled != it.sampled_tokens) {
      fail(path, number, fmt::format("the batch ({} decodes, {} chunks of {} tokens, {} sampled) disagrees with the counts "
                                     "({}, {}, {}, {})", decodes, prefills, prefill_tokens, sampled, it.decode_seqs,
                                     it.prefill_seqs, it.prefill_tokens, it.sampled_tokens));
    }
    rows.push_back(std::move(it));
  }
  return rows;
}

}  // namespace kvlab::experiments
