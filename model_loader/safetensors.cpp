// model_loader/safetensors.cpp: mapping and validating safetensors files. See safetensors.h for
// the layout. Nothing in the mapping is exposed before parse_header() has checked all of it.
#include "model_loader/safetensors.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace m2fp {

using json = nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw LoadError(path + ": " + what);
}

std::string errno_str(int err) { return std::strerror(err); }

// A JSON value for an error message, shortened so a hostile header cannot flood the message.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Quoted key for error messages; control bytes and very long names are escaped / shortened.
std::string quote(const std::string& key) {
  std::string s = json(key).dump(-1, ' ', true, json::error_handler_t::replace);  // "..."
  s = s.substr(1, s.size() - 2);
  if (s.size() > 200) s = s.substr(0, 197) + "...";
  return "'" + s + "'";
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

const DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64,
                            DType::I32, DType::I16, DType::I8,   DType::U8,  DType::BOOL};

std::string known_dtypes() {
  std::string s;
  for (DType d : kAllDTypes) s += (s.empty() ? "" : ", ") + std::string(dtype_name(d));
  return s;
}

// A JSON integer that is >= 0 and fits in int64 (safetensors shapes and offsets).
bool as_nonneg_i64(const json& v, int64_t* out) {
  if (!v.is_number_unsigned()) return false;
  uint64_t u = v.get<uint64_t>();
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *out = static_cast<int64_t>(u);
  return true;
}

// ---- SIGBUS guard for mappings whose file shrinks underneath them --------------------------------
// A fixed table of live mappings (the handler cannot take locks or allocate). A slot is claimed by
// compare-and-swap on `lo`; the handler only reads it.
struct GuardSlot {
  std::atomic<uintptr_t> lo{0}, hi{0};    // [lo, hi): the whole mapping, page-rounded
  std::atomic<int> faulted{0};
  std::atomic<uint64_t> fault_offset{0};  // file offset of the first lost byte touched
};
constexpr int kGuardSlots = 256;
GuardSlot g_guard[kGuardSlots];
struct sigaction g_prev_sigbus;
std::atomic<bool> g_guard_installed{false};
uintptr_t g_page_size = 4096;

void on_sigbus(int sig, siginfo_t* si, void* uctx) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
  if (si->si_code > 0) {  // a fault, not kill(): is it in one of our mappings?
    for (GuardSlot& s : g_guard) {
      const uintptr_t lo = s.lo.load(std::memory_order_acquire);
      const uintptr_t hi = s.hi.load(std::memory_order_acquire);
      if (lo == 0 || a < lo || a >= hi) continue;
      // Zero pages from the faulting page to the end of the mapping (all of it lies past the new
      // end of file); the faulting instruction then reads zeros. mmap is a plain system call.
      const uintptr_t page = a & ~(g_page_size - 1);
      void* r = ::mmap(reinterpret_cast<void*>(page), hi - page, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (r != MAP_FAILED) {
        if (!s.faulted.exchange(1)) s.fault_offset.store(a - lo);
        return;
      }
      break;  // could not patch: fall through to the default action
    }
  }
  // Not ours: hand it to whoever had SIGBUS before us.
  if (g_prev_sigbus.sa_flags & SA_SIGINFO) {
    if (g_prev_sigbus.sa_sigaction) {
      g_prev_sigbus.sa_sigaction(sig, si, uctx);
      return;
    }
  } else if (g_prev_sigbus.sa_handler != SIG_DFL && g_prev_sigbus.sa_handler != SIG_IGN) {
    g_prev_sigbus.sa_handler(sig);
    return;
  }
  // Default action: die with SIGBUS (a fault re-executes the instruction; kill() needs a raise).
  ::signal(SIGBUS, SIG_DFL);
  if (si->si_code <= 0) ::raise(SIGBUS);
}

void install_sigbus_guard() {
  if (g_guard_installed.load()) return;
  static std::atomic_flag busy = ATOMIC_FLAG_INIT;
  while (busy.test_and_set()) {
  }
  if (!g_guard_installed.load()) {
    g_page_size = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGBUS, &sa, &g_prev_sigbus) == 0) g_guard_installed.store(true);
  }
  busy.clear();
}

// Registers [lo, hi); returns the slot or -1 when the table is full (the mapping is then not
// guarded: a truncation raises SIGBUS as with any mmap).
int guard_mapping(const uint8_t* lo, uint64_t size) {
  install_sigbus_guard();
  if (!g_guard_installed.load()) return -1;
  const uintptr_t a = reinterpret_cast<uintptr_t>(lo);
  const uintptr_t b = (a + size + g_page_size - 1) & ~(g_page_size - 1);
  for (int i = 0; i < kGuardSlots; ++i) {
    uintptr_t expect = 0;
    GuardSlot& s = g_guard[i];
    if (s.lo.load() != 0) continue;
    s.faulted.store(0);
    s.fault_offset.store(0);
    s.hi.store(b, std::memory_order_release);
    if (s.lo.compare_exchange_strong(expect, a, std::memory_order_acq_rel)) return i;
  }
  return -1;
}

void unguard_mapping(int slot) {
  if (slot < 0) return;
  g_guard[slot].lo.store(0, std::memory_order_release);
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

// ---- dtypes and views ---------------------------------------------------------------------------

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

bool dtype_from_name(const std::string& name, DType* out) {
  for (DType d : kAllDTypes) {
    if (name == dtype_name(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // open() refused shapes whose product overflows
  return n;
}

std::string TensorView::shape_str() const { return shape_to_string(shape); }

// ---- opening ------------------------------------------------------------------------------------

std::unique_ptr<SafetensorsFile> SafetensorsFile::from_bytes(const uint8_t* bytes, size_t size,
                                                             const std::string& name) {
  if (!bytes && size) fail(name, "null data");
  if (size == 0) fail(name, "empty file (0 bytes), not a safetensors file");
  if (size < 8) {
    fail(name, "file too small (" + std::to_string(size) +
                   " bytes): a safetensors file starts with an 8-byte header length");
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = name;
  f->owned_.assign(bytes, bytes + size);
  f->size_ = size;
  f->map_ = f->owned_.data();
  f->parse_header();
  return f;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
  FdCloser fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) fail(path, "cannot open: " + errno_str(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail(path, "cannot stat: " + errno_str(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory, not a safetensors file");
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) fail(path, "empty file (0 bytes), not a safetensors file");
  if (size < 8) {
    fail(path, "file too small (" + std::to_string(size) +
                   " bytes): a safetensors file starts with an 8-byte header length");
  }
  if (size > static_cast<uint64_t>(std::numeric_limits<size_t>::max())) fail(path, "file too large to map");

  void* m = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (m == MAP_FAILED) fail(path, "mmap failed: " + errno_str(errno));

  // From here on the destructor unmaps (and closes the descriptor), also when parse_header() throws.
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->size_ = size;
  f->map_ = static_cast<const uint8_t*>(m);
  f->mapped_ = true;
  f->fd_ = fd.fd;
  fd.fd = -1;
  f->mtime_ns_ = mtime_ns(st);
  f->guard_slot_ = guard_mapping(f->map_, size);
  try {
    f->parse_header();
  } catch (const LoadError&) {
    f->check_unchanged();  // a header read from lost pages: say so rather than "bad JSON"
    throw;
  }
  f->check_unchanged();
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  unguard_mapping(guard_slot_);
  if (mapped_ && map_) ::munmap(const_cast<uint8_t*>(map_), static_cast<size_t>(size_));
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsFile::check_unchanged() const {
  if (!mapped_) return;
  if (guard_slot_ >= 0 && g_guard[guard_slot_].faulted.load()) {
    fail(path_, "the file was truncated while it was being read (" + std::to_string(size_) +
                    " bytes at open, byte " + std::to_string(g_guard[guard_slot_].fault_offset.load()) +
                    " no longer readable): wait until it is completely written and load it again");
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail(path_, "cannot stat: " + errno_str(errno));
  const uint64_t now = static_cast<uint64_t>(st.st_size);
  if (now != size_ || mtime_ns(st) != mtime_ns_) {
    fail(path_, "the file changed while it was being read (" + std::to_string(size_) + " bytes at open, " +
                    std::to_string(now) + " now" + (now == size_ ? ", modified in place" : "") +
                    "): wait until it is completely written and load it again");
  }
}

void SafetensorsFile::parse_header() {
  const std::string& path = path_;

  // ---- header length N (u64 little-endian), 2 <= N <= min(file_size - 8, 100 MiB)
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | map_[i];
  const uint64_t room = size_ - 8;
  // An impossible header length from a file that starts like a PyTorch checkpoint (a zip archive:
  // torch.save since 1.6, ModelScope's pytorch_model.pt; or a bare pickle stream: older torch.save)
  // is that checkpoint given unconverted: say what to do instead of quoting the number.
  if (n < 2 || n > room || n > kMaxHeaderBytes) {
    const char* kind = nullptr;
    if (map_[0] == 'P' && map_[1] == 'K' && map_[2] == 3 && map_[3] == 4)
      kind = "a PyTorch checkpoint (zip archive, e.g. ModelScope's pytorch_model.pt)";
    else if (map_[0] == 0x80 && map_[1] >= 2 && map_[1] <= 5)
      kind = "a PyTorch checkpoint (pickle stream)";
    if (kind) {
      fail(path, std::string("is ") + kind +
                     ", not a safetensors file: convert it first with `python3 tools/convert_weights.py "
                     "MODEL_FOLDER -o model.safetensors` (README, 'Using the real checkpoint')");
    }
  }
  if (n < 2) {
    fail(path, "header length " + std::to_string(n) + " is too small (at least 2 bytes: \"{}\")");
  }
  if (n > room) {
    fail(path, "header length " + std::to_string(n) + " exceeds the file (" + std::to_string(size_) +
                   " bytes, at most " + std::to_string(room) + " after the 8-byte length; truncated?)");
  }
  if (n > kMaxHeaderBytes) {
    fail(path, "header length " + std::to_string(n) + " exceeds the 100 MiB limit");
  }
  header_size_ = n;
  data_ = map_ + 8 + n;
  const uint64_t data_size = room - n;
  // nlohmann's lexer takes a NUL byte for the end of input; a header must not hide bytes after one.
  if (const void* nul = std::memchr(map_ + 8, 0, static_cast<size_t>(n))) {
    fail(path, "header contains a NUL byte at offset " +
                   std::to_string(static_cast<const uint8_t*>(nul) - (map_ + 8)) + " (pad with spaces)");
  }

  // ---- JSON, with duplicate keys refused and nesting bounded (by a parser callback, which
  // sees every key before nlohmann's DOM would silently keep only one of them).
  struct Frame {
    bool object = false;
    std::set<std::string> keys;
    std::string key;  // the last key seen in this object
  };
  std::vector<Frame> stack;
  std::vector<std::string> top_keys;  // header order of the top-level entries
  auto where = [&stack]() {
    std::string w;
    for (size_t i = 0; i + 1 < stack.size(); ++i) {
      if (stack[i].object) w += (w.empty() ? "" : " / ") + quote(stack[i].key);
    }
    return w.empty() ? std::string() : " in " + w;
  };
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (static_cast<int>(stack.size()) >= kMaxJsonDepth) {
          fail(path, "header JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        }
        stack.push_back(Frame{ev == json::parse_event_t::object_start, {}, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        if (stack.empty() || !stack.back().object) break;  // cannot happen with nlohmann's lexer
        const std::string& k = parsed.get_ref<const std::string&>();
        Frame& f = stack.back();
        if (!f.keys.insert(k).second) {
          if (stack.size() == 1) fail(path, "duplicate key " + quote(k) + " in the header");
          fail(path, "duplicate key " + quote(k) + where());
        }
        f.key = k;
        if (stack.size() == 1) top_keys.push_back(k);
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  json header;
  try {
    const char* first = reinterpret_cast<const char*>(map_ + 8);
    header = json::parse(first, first + n, cb, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory while parsing the " + std::to_string(n) + "-byte header");
  }
  if (!header.is_object()) {
    fail(path, std::string("header must be a JSON object, got ") + header.type_name());
  }

  // ---- entries, in header order
  std::vector<TensorView> tensors;
  tensors.reserve(top_keys.size());
  for (const std::string& name : top_keys) {
    const json& e = header.at(name);
    if (name == "__metadata__") {
      if (!e.is_object()) fail(path, std::string("'__metadata__' must be an object, got ") + e.type_name());
      for (auto it = e.begin(); it != e.end(); ++it) {
        if (!it.value().is_string()) {
          fail(path, "metadata " + quote(it.key()) + ": value must be a string, got " +
                         it.value().type_name() + " " + brief(it.value()));
        }
        metadata_[it.key()] = it.value().get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor " + quote(name) + ": ";
    if (!e.is_object()) fail(path, what + "entry must be an object, got " + e.type_name() + " " + brief(e));
    TensorView t;
    t.name = name;

    // dtype
    auto dt = e.find("dtype");
    if (dt == e.end()) fail(path, what + "missing 'dtype'");
    if (!dt->is_string()) fail(path, what + "'dtype' must be a string, got " + brief(*dt));
    if (!dtype_from_name(dt->get<std::string>(), &t.dtype)) {
      fail(path, what + "unknown dtype " + quote(dt->get<std::string>()) + " (known: " + known_dtypes() + ")");
    }

    // shape: non-negative integers whose product, and product x dtype size, fit in int64
    auto sh = e.find("shape");
    if (sh == e.end()) fail(path, what + "missing 'shape'");
    if (!sh->is_array()) fail(path, what + "'shape' must be an array, got " + brief(*sh));
    int64_t numel = 1;
    for (const json& d : *sh) {
      int64_t v = 0;
      if (!as_nonneg_i64(d, &v)) {
        if (d.is_number_integer() && !d.is_number_unsigned()) {
          fail(path, what + "shape " + brief(*sh) + " has a negative dimension " + brief(d));
        }
        fail(path, what + "shape " + brief(*sh) + ": dimension " + brief(d) + " is not an integer in [0, 2^63)");
      }
      t.shape.push_back(v);
      if (__builtin_mul_overflow(numel, v, &numel)) {
        fail(path, what + "shape " + brief(*sh) + ": element count overflows 64 bits");
      }
    }
    int64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(t.dtype)), &nbytes)) {
      fail(path, what + "shape " + t.shape_str() + " x " + dtype_name(t.dtype) + ": byte size overflows 64 bits");
    }

    // data_offsets [begin, end], begin <= end <= data size, end - begin == numel x dtype size
    auto off = e.find("data_offsets");
    if (off == e.end()) fail(path, what + "missing 'data_offsets'");
    int64_t b = 0, en = 0;
    if (!off->is_array() || off->size() != 2 || !as_nonneg_i64((*off)[0], &b) || !as_nonneg_i64((*off)[1], &en)) {
      fail(path, what + "'data_offsets' must be [begin, end] with integers in [0, 2^63), got " + brief(*off));
    }
    const std::string offs = "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "]";
    if (b > en) fail(path, what + offs + ": begin > end");
    if (static_cast<uint64_t>(en) > data_size) {
      fail(path, what + offs + " run past the end of the data section (" + std::to_string(data_size) +
                     " bytes; file truncated?)");
    }
    if (en - b != nbytes) {
      fail(path, what + offs + " do not match shape " + t.shape_str() + " x " + dtype_name(t.dtype) + " = " +
                     std::to_string(nbytes) + " bytes");
    }
    t.begin = static_cast<uint64_t>(b);
    t.end = static_cast<uint64_t>(en);
    t.data = data_ + t.begin;
    tensors.push_back(std::move(t));
  }

  // ---- no two tensors share a byte (empty tensors occupy nothing)
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].begin != tensors[b].begin ? tensors[a].begin < tensors[b].begin : tensors[a].end < tensors[b].end;
  });
  const TensorView* last = nullptr;  // the non-empty tensor reaching furthest so far
  for (size_t i : order) {
    const TensorView& t = tensors[i];
    if (t.begin == t.end) continue;
    if (last && t.begin < last->end) {
      fail(path, "tensors " + quote(last->name) + " [" + std::to_string(last->begin) + ", " +
                     std::to_string(last->end) + "] and " + quote(t.name) + " [" + std::to_string(t.begin) +
                     ", " + std::to_string(t.end) + "] overlap");
    }
    if (!last || t.end > last->end) last = &t;
  }

  tensors_ = std::move(tensors);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::release(const TensorView& t) const {
  const uint8_t* lo = t.data;
  if (t.end < t.begin || lo < data_ || lo > map_ + size_ || t.end - t.begin > static_cast<uint64_t>(map_ + size_ - lo)) {
    fail(path_, "release: tensor " + quote(t.name) + " does not lie in this file's mapping");
  }
  check_unchanged();
  if (!mapped_) return;  // from_bytes(): nothing to hand back
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t a = reinterpret_cast<uintptr_t>(lo);
  const uintptr_t b = a + (t.end - t.begin);
  const uintptr_t first = (a + page - 1) / page * page;  // whole pages inside [a, b)
  const uintptr_t last = b / page * page;
  if (first >= last) return;
  if (::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) != 0) {
    fail(path_, "release: madvise on tensor " + quote(t.name) + " failed: " + errno_str(errno));
  }
}

}  // namespace m2fp
