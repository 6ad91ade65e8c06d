// fuzz/fuzz_safetensors.cpp: libFuzzer target for untrusted model files, through
// SafetensorsFile::from_bytes (the validation open() uses, without a file): the header length,
// JSON (duplicates, depth, NUL bytes), entries, offsets and overlaps; every exposed tensor byte is
// read. When the metadata holds an "m2fp.config", the configuration is parsed and every tensor the
// network expects is bound by name, dtype and shape through NetworkBinder, as M2FP::load does.
//
// Findings: crashes, ASan/UBSan reports, exceptions other than LoadError, broken invariants.
#include <cstddef>
#include <cstdint>

#include "model_loader/config.h"
#include "model_loader/safetensors.h"

namespace {
void check(bool ok) {
  if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<m2fp::SafetensorsFile> f;
  try {
    f = m2fp::SafetensorsFile::from_bytes(data, size, "fuzz.safetensors");
  } catch (const m2fp::LoadError&) {
    return 0;
  }
  check(f->header_size() >= 2 && 8 + f->header_size() <= size);
  unsigned sum = 0;
  for (const m2fp::TensorView& t : f->tensors()) {
    check(t.begin <= t.end && t.end <= f->data_size());
    check((uint64_t)t.numel() * m2fp::dtype_size(t.dtype) == t.nbytes());
    check(f->find(t.name) == &t);
    for (uint64_t i = 0; i < t.nbytes(); ++i) sum += t.data[i];  // ASan checks the bounds
    f->release(t);
  }
  volatile unsigned sink = sum;
  (void)sink;

  m2fp::ModelConfig cfg;
  try {
    cfg = m2fp::read_model_config(*f);
  } catch (const m2fp::LoadError&) {
    return 0;
  }
  (void)cfg.summary();
  (void)m2fp::count_parameters(*f);
  // Every tensor of the configuration's table, through the binder M2FP::load uses.
  m2fp::NetworkBinder b(*f, cfg);
  bool all_bound = true;
  for (const m2fp::ExpectedTensor& e : m2fp::expected_tensors(cfg)) {
    try {
      if (e.dtype == m2fp::DType::F32) {
        const m2fp::Weight w = b.f32(e.name);
        const m2fp::TensorView* t = f->find(e.name);
        check(t && reinterpret_cast<const uint8_t*>(w.data) == t->data && w.shape == t->shape);
        float s = 0;
        for (int64_t i = 0; i < t->numel(); ++i) s += w.data[i];
        volatile float fs = s;
        (void)fs;
      } else {
        b.unused(e.name);
      }
    } catch (const m2fp::LoadError&) {
      all_bound = false;
    }
  }
  if (all_bound) b.finish();  // every entry was bound: must not throw
  return 0;
}
