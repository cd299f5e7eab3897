// Problem/result files (docs/bsr.md, "File format"). Little-endian, FNV-1a-64 checksummed;
// every count is checked against the bytes that remain before anything is allocated.
#include "sattn/plan_io.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sattn {
namespace {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE-754 float/double expected");
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sattn's file format is little-endian; add byte swapping for big-endian hosts"
#endif

constexpr char kProblemMagic[8] = {'S', 'A', 'T', 'T', 'N', 'P', 'R', 'B'};
constexpr char kResultMagic[8] = {'S', 'A', 'T', 'T', 'N', 'R', 'E', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;  // magic, version, reserved, payload size
constexpr size_t kTrailerBytes = 8;             // FNV-1a-64 of the payload

uint64_t Fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    const size_t at = buf_.size();
    buf_.resize(at + sizeof(T));
    std::memcpy(buf_.data() + at, &v, sizeof(T));
  }
  template <typename T>
  void PutArray(const std::vector<T>& v) {
    Put<uint64_t>(v.size());
    const size_t at = buf_.size();
    buf_.resize(at + v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(buf_.data() + at, v.data(), v.size() * sizeof(T));
  }
  std::vector<uint8_t> Finish(const char (&magic)[8]) {
    std::vector<uint8_t> out(kHeaderBytes);
    std::memcpy(out.data(), magic, 8);
    const uint32_t version = kVersion, reserved = 0;
    const uint64_t size = buf_.size();
    std::memcpy(out.data() + 8, &version, 4);
    std::memcpy(out.data() + 12, &reserved, 4);
    std::memcpy(out.data() + 16, &size, 8);
    out.insert(out.end(), buf_.begin(), buf_.end());
    const uint64_t sum = Fnv1a64(buf_.data(), buf_.size());
    const size_t at = out.size();
    out.resize(at + 8);
    std::memcpy(out.data() + at, &sum, 8);
    return out;
  }

 private:
  std::vector<uint8_t> buf_;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <typename T>
  bool Get(T* v) {
    if (n_ - at_ < sizeof(T)) return false;
    std::memcpy(v, p_ + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  // Reads a counted array; `expected` < 0 means any length.
  template <typename T>
  bool GetArray(std::vector<T>* v, int64_t expected = -1) {
    uint64_t count;
    if (!Get(&count)) return false;
    if (expected >= 0 && count != uint64_t(expected)) return false;
    if (count > (n_ - at_) / sizeof(T)) return false;
    v->resize(count);
    if (count) std::memcpy(v->data(), p_ + at_, count * sizeof(T));
    at_ += count * sizeof(T);
    return true;
  }
  bool AtEnd() const { return at_ == n_; }

 private:
  const uint8_t* p_;
  size_t n_, at_ = 0;
};

// Checks header and checksum; on success points *payload/*size at the payload.
Status OpenEnvelope(const uint8_t* data, size_t size, const char (&magic)[8], const char* what,
                    const uint8_t** payload, size_t* payload_size) {
  const std::string w(what);
  if (size < kHeaderBytes + kTrailerBytes) return Status::Invalid(w + ": truncated (shorter than its header)");
  if (std::memcmp(data, magic, 8) != 0) return Status::Invalid(w + ": bad magic (not a sattn " + w + " file)");
  uint32_t version, reserved;
  uint64_t n;
  std::memcpy(&version, data + 8, 4);
  std::memcpy(&reserved, data + 12, 4);
  std::memcpy(&n, data + 16, 8);
  if (version != kVersion)
    return Status::Invalid(w + ": unsupported version " + std::to_string(version) + " (expected 1)");
  // Not covered by the checksum: a non-zero value is a corrupted or foreign file.
  if (reserved != 0) return Status::Invalid(w + ": reserved header field must be 0, got " + std::to_string(reserved));
  if (n != size - kHeaderBytes - kTrailerBytes)
    return Status::Invalid(w + ": truncated or padded (payload size " + std::to_string(n) +
                           " does not match the file's " + std::to_string(size - kHeaderBytes - kTrailerBytes) + " bytes)");
  uint64_t sum;
  std::memcpy(&sum, data + kHeaderBytes + n, 8);
  if (sum != Fnv1a64(data + kHeaderBytes, n)) return Status::Invalid(w + ": checksum mismatch (corrupted)");
  *payload = data + kHeaderBytes;
  *payload_size = n;
  return Status::Ok();
}

void PutShape(Writer* w, const Shape& s) {
  for (int32_t v : {s.B, s.Hq, s.Hkv, s.Lq, s.Lk, s.D}) w->Put<int32_t>(v);
}

bool GetShape(Reader* r, Shape* s) {
  return r->Get(&s->B) && r->Get(&s->Hq) && r->Get(&s->Hkv) && r->Get(&s->Lq) && r->Get(&s->Lk) && r->Get(&s->D);
}

Status ReadFile(const std::string& path, std::vector<uint8_t>* bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Invalid("path: cannot open '" + path + "' for reading");
  bytes->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return Status::Ok();
}

Status WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  if (!f) return Status::Invalid("path: cannot open '" + path + "' for writing");
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!f) return Status::Invalid("path: write to '" + path + "' failed");
  return Status::Ok();
}

}  // namespace

std::vector<uint8_t> SerializeProblem(const Problem& pr) {
  Writer w;
  const Spec& s = pr.spec;
  w.Put<int32_t>(int32_t(s.kind));
  w.Put<int32_t>(s.causal ? 1 : 0);
#define SATTN_PUT_I32(name) w.Put<int32_t>(s.name);
#define SATTN_PUT_F64(name) w.Put<double>(s.name);
#define SATTN_PUT_U64(name) w.Put<uint64_t>(s.name);
#define SATTN_PUT_SCORE(name) w.Put<int32_t>(int32_t(s.name));
  SATTN_SPEC_FIELDS(SATTN_PUT_I32, SATTN_PUT_F64, SATTN_PUT_U64, SATTN_PUT_SCORE)
#undef SATTN_PUT_SCORE
#undef SATTN_PUT_U64
#undef SATTN_PUT_F64
#undef SATTN_PUT_I32
  PutShape(&w, pr.shape);
  w.Put<double>(pr.scale);
  w.PutArray(pr.q);
  w.PutArray(pr.k);
  w.PutArray(pr.v);
  const BlockPlan& p = pr.plan;
  for (int32_t v : {p.block, p.B, p.Hq, p.Lq, p.Lk, p.plan_b, p.plan_h, p.q_block_begin, p.n_q_blocks,
                    p.n_k_blocks, p.words_per_row})
    w.Put<int32_t>(v);
  w.PutArray(p.row_ptr);
  w.PutArray(p.col_idx);
  w.PutArray(p.mask_idx);
  w.PutArray(p.bitmaps);
  return w.Finish(kProblemMagic);
}

Status ParseProblem(const uint8_t* data, size_t size, Problem* pr) {
  const uint8_t* payload;
  size_t n;
  Status st = OpenEnvelope(data, size, kProblemMagic, "problem", &payload, &n);
  if (!st.ok()) return st;
  Reader r(payload, n);
  Spec& s = pr->spec;
  int32_t kind, causal, score;
  const auto truncated = [](const char* field) {
    return Status::Invalid(std::string("problem.") + field + ": truncated or inconsistent with the shape");
  };
#define SATTN_READ(name) &&r.Get(&s.name)
#define SATTN_READ_SCORE(name) &&r.Get(&name)
  if (!(r.Get(&kind) && r.Get(&causal) SATTN_SPEC_FIELDS(SATTN_READ, SATTN_READ, SATTN_READ, SATTN_READ_SCORE)))
    return truncated("spec");
#undef SATTN_READ_SCORE
#undef SATTN_READ
  if (kind < 0 || kind > 4) return Status::Invalid("problem.spec.kind: expected 0..4, got " + std::to_string(kind));
  if (causal != 0 && causal != 1) return Status::Invalid("problem.spec.causal: expected 0 or 1");
  s.kind = SpecKind(kind);
  s.causal = causal == 1;
  s.score = BlockScore(score);
  st = ValidateSpec(s);
  if (!st.ok()) return Status::Invalid("problem.spec." + st.message);
  if (!GetShape(&r, &pr->shape)) return truncated("shape");
  st = ValidateShape(pr->shape);
  if (!st.ok()) return Status::Invalid("problem.shape." + st.message);
  if (!r.Get(&pr->scale) || !(pr->scale > 0) || !std::isfinite(pr->scale))
    return Status::Invalid("problem.scale: expected a finite number > 0");
  // ValidateShape bounded every element count by kMaxTensorElements, so these products are exact.
  const Shape& sh = pr->shape;
  const int64_t nq = int64_t(sh.B) * sh.Hq * sh.Lq * sh.D, nk = int64_t(sh.B) * sh.Hkv * sh.Lk * sh.D;
  if (!r.GetArray(&pr->q, nq)) return truncated("q");
  if (!r.GetArray(&pr->k, nk)) return truncated("k");
  if (!r.GetArray(&pr->v, nk)) return truncated("v");
  BlockPlan& p = pr->plan;
  for (int32_t* f : {&p.block, &p.B, &p.Hq, &p.Lq, &p.Lk, &p.plan_b, &p.plan_h, &p.q_block_begin, &p.n_q_blocks,
                     &p.n_k_blocks, &p.words_per_row})
    if (!r.Get(f)) return truncated("plan");
  if (p.B != sh.B || p.Hq != sh.Hq || p.Lq != sh.Lq || p.Lk != sh.Lk)
    return Status::Invalid("problem.plan: built for another shape (B, Hq, Lq, Lk differ from problem.shape)");
  if (!(r.GetArray(&p.row_ptr) && r.GetArray(&p.col_idx) && r.GetArray(&p.mask_idx) && r.GetArray(&p.bitmaps)))
    return truncated("plan arrays");
  if (!r.AtEnd()) return Status::Invalid("problem: trailing bytes after the plan");
  st = ValidatePlan(p);
  if (!st.ok()) return Status::Invalid("problem." + st.message);
  return Status::Ok();
}

std::vector<uint8_t> SerializeResult(const Result& res) {
  Writer w;
  PutShape(&w, res.shape);
  w.PutArray(res.out);
  w.PutArray(res.lse);
  w.Put<uint32_t>(uint32_t(res.counters.size()));
  for (const auto& [name, value] : res.counters) {
    w.Put<uint32_t>(uint32_t(name.size()));
    for (char c : name) w.Put<char>(c);
    w.Put<int64_t>(value);
  }
  return w.Finish(kResultMagic);
}

Status ParseResult(const uint8_t* data, size_t size, Result* res) {
  const uint8_t* payload;
  size_t n;
  Status st = OpenEnvelope(data, size, kResultMagic, "result", &payload, &n);
  if (!st.ok()) return st;
  Reader r(payload, n);
  if (!GetShape(&r, &res->shape)) return Status::Invalid("result.shape: truncated");
  st = ValidateShape(res->shape);
  if (!st.ok()) return Status::Invalid("result.shape." + st.message);
  const Shape& sh = res->shape;  // element counts bounded by ValidateShape: exact products
  if (!r.GetArray(&res->out, int64_t(sh.B) * sh.Hq * sh.Lq * sh.D))
    return Status::Invalid("result.out: truncated or inconsistent with the shape");
  if (!r.GetArray(&res->lse, int64_t(sh.B) * sh.Hq * sh.Lq))
    return Status::Invalid("result.lse: truncated or inconsistent with the shape");
  uint32_t count;
  if (!r.Get(&count)) return Status::Invalid("result.counters: truncated");
  res->counters.clear();
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len;
    if (!r.Get(&len) || len > 256) return Status::Invalid("result.counters: bad name length");
    std::string name(len, '\0');
    for (auto& c : name)
      if (!r.Get(&c)) return Status::Invalid("result.counters: truncated name");
    int64_t value;
    if (!r.Get(&value)) return Status::Invalid("result.counters: truncated value");
    res->counters.emplace_back(std::move(name), value);
  }
  if (!r.AtEnd()) return Status::Invalid("result: trailing bytes after the counters");
  return Status::Ok();
}

Status WriteProblem(const std::string& path, const Problem& problem) {
  return WriteFile(path, SerializeProblem(problem));
}

Status ReadProblem(const std::string& path, Problem* problem) {
  std::vector<uint8_t> bytes;
  Status st = ReadFile(path, &bytes);
  return st.ok() ? ParseProblem(bytes.data(), bytes.size(), problem) : st;
}

Status WriteResult(const std::string& path, const Result& result) {
  return WriteFile(path, SerializeResult(result));
}

Status ReadResult(const std::string& path, Result* result) {
  std::vector<uint8_t> bytes;
  Status st = ReadFile(path, &bytes);
  return st.ok() ? ParseResult(bytes.data(), bytes.size(), result) : st;
}

}  // namespace sattn
