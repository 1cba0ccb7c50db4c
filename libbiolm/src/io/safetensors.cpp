// safetensors reader and writer; see biolm/io/safetensors.h for the format.
#include "biolm/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <set>

#include "biolm/core/error.h"
#include "biolm/io/files.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors stores little-endian data; this reader assumes a little-endian host"
#endif

namespace biolm::io {
namespace {

// Same cap as the reference implementation: a header above 100 MB is refused before parsing.
constexpr uint64_t kMaxHeaderBytes = 100ULL * 1000 * 1000;

struct DtypeEntry {
  Dtype dtype;
  const char* name;
  std::size_t size;
  c10::ScalarType scalar;
};
constexpr DtypeEntry kDtypes[] = {
    {Dtype::F64, "F64", 8, c10::ScalarType::Double}, {Dtype::F32, "F32", 4, c10::ScalarType::Float},
    {Dtype::F16, "F16", 2, c10::ScalarType::Half},   {Dtype::BF16, "BF16", 2, c10::ScalarType::BFloat16},
    {Dtype::I64, "I64", 8, c10::ScalarType::Long},   {Dtype::I32, "I32", 4, c10::ScalarType::Int},
    {Dtype::I16, "I16", 2, c10::ScalarType::Short},  {Dtype::I8, "I8", 1, c10::ScalarType::Char},
    {Dtype::U8, "U8", 1, c10::ScalarType::Byte},     {Dtype::BOOL, "BOOL", 1, c10::ScalarType::Bool},
};

const DtypeEntry& entry(Dtype d) { return kDtypes[static_cast<int>(d)]; }

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// nlohmann::json keeps the last of duplicate keys without a word; the parse callback sees every
// key as it is read, so a stack of key sets (one per open object) finds duplicates at any depth.
struct DuplicateFinder {
  std::vector<std::set<std::string>> open;
  std::optional<std::string> duplicate;
  bool operator()(int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      open.emplace_back();
    } else if (event == E::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == E::key && !open.empty() && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!open.back().insert(k).second && !duplicate) duplicate = k;
    }
    return true;
  }
};

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& e) {
  auto fail = [&](const std::string& msg) { return CheckpointError(path, name, msg); };
  if (!e.is_object()) throw fail(fmt::format("header entry must be a JSON object, found {}", e.type_name()));
  for (const auto& [k, v] : e.items()) {
    (void)v;
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      throw fail(fmt::format("unknown field '{}' (expected dtype, shape, data_offsets)", k));
  }
  TensorInfo t;
  t.name = name;
  if (!e.contains("dtype")) throw fail("missing field 'dtype'");
  if (!e["dtype"].is_string()) throw fail("field 'dtype' must be a string");
  const auto dname = e["dtype"].get<std::string>();
  auto dt = parse_dtype(dname);
  if (!dt)
    throw fail(fmt::format("unknown dtype \"{}\" (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)",
                           dname));
  t.dtype = *dt;
  if (!e.contains("shape")) throw fail("missing field 'shape'");
  if (!e["shape"].is_array()) throw fail("field 'shape' must be an array of integers");
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : e["shape"]) {
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
      throw fail(fmt::format("negative dimension {} in shape", d.get<int64_t>()));
    if (!d.is_number_unsigned()) throw fail(fmt::format("shape entry {} is not a non-negative integer", d.dump()));
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw fail(fmt::format("dimension {} is too large", v));
    t.shape.push_back(static_cast<int64_t>(v));
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v) overflow = true;
    numel *= v;
  }
  if (!e.contains("data_offsets")) throw fail("missing field 'data_offsets'");
  const auto& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    throw fail(fmt::format("field 'data_offsets' must be two non-negative integers, found {}", off.dump()));
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  if (t.end < t.begin) throw fail(fmt::format("data_offsets [{}, {}] end before begin", t.begin, t.end));
  const uint64_t esize = entry(t.dtype).size;
  if (overflow || (numel != 0 && numel > std::numeric_limits<uint64_t>::max() / esize))
    throw fail(fmt::format("shape {} overflows the byte count", shape_str(t.shape)));
  if (numel * esize != t.nbytes())
    throw fail(fmt::format("data_offsets [{}, {}] hold {} bytes but shape {} x {} needs {} bytes", t.begin, t.end,
                           t.nbytes(), shape_str(t.shape), dname, numel * esize));
  return t;
}

}  // namespace

std::string_view dtype_name(Dtype dtype) { return entry(dtype).name; }
std::optional<Dtype> parse_dtype(std::string_view name) {
  for (const auto& e : kDtypes)
    if (name == e.name) return e.dtype;
  return std::nullopt;
}
std::size_t dtype_size(Dtype dtype) { return entry(dtype).size; }
c10::ScalarType to_scalar_type(Dtype dtype) { return entry(dtype).scalar; }
Dtype from_scalar_type(c10::ScalarType type) {
  for (const auto& e : kDtypes)
    if (e.scalar == type) return e.dtype;
  throw CheckpointError("<dtype>", "", fmt::format("scalar type {} cannot be stored in safetensors", c10::toString(type)));
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsHeader parse_safetensors(const uint8_t* data, std::size_t size, const std::string& path) {
  if (size < 8)
    throw CheckpointError(path, "", fmt::format("file is {} bytes, shorter than the 8-byte header length", size));
  SafetensorsHeader h;
  h.header_size = read_u64_le(data);
  if (h.header_size > kMaxHeaderBytes)
    throw CheckpointError(path, "", fmt::format("header length {} exceeds the 100 MB limit", h.header_size));
  if (h.header_size > size - 8)
    throw CheckpointError(path, "", fmt::format("header length {} runs past the end of the file ({} bytes after "
                                                "the length field)", h.header_size, size - 8));
  h.data_offset = 8 + h.header_size;
  h.data_size = size - h.data_offset;
  const char* json_begin = reinterpret_cast<const char*>(data + 8);
  const char* json_end = json_begin + h.header_size;
  if (h.header_size == 0 || *json_begin != '{')
    throw CheckpointError(path, "", "header does not start with '{' (not a safetensors file?)");

  DuplicateFinder finder;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_begin, json_end, std::ref(finder), /*allow_exceptions=*/true);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path, "", fmt::format("header is not valid JSON: {}", e.what()));
  }
  if (finder.duplicate)
    throw CheckpointError(path, *finder.duplicate, "duplicate name in header");
  if (!j.is_object()) throw CheckpointError(path, "", "header is not a JSON object");

  for (const auto& [name, value] : j.items()) {
    if (name == "__metadata__") {
      if (!value.is_object())
        throw CheckpointError(path, "__metadata__", fmt::format("must be an object, found {}", value.type_name()));
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          throw CheckpointError(path, "__metadata__",
                                fmt::format("value of '{}' must be a string, found {}", k, v.type_name()));
        h.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(path, name, value));
  }
  // Coverage: sorted by offsets, the tensors must tile [0, data_size) with no gap or overlap.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : h.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (t->end > h.data_size)
      throw CheckpointError(path, t->name,
                            fmt::format("data_offsets [{}, {}] outside the data section ({} bytes)", t->begin, t->end,
                                        h.data_size));
    if (t->begin < cursor)
      throw CheckpointError(path, t->name,
                            fmt::format("data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", t->begin, t->end,
                                        prev->name, prev->begin, prev->end));
    if (t->begin > cursor)
      throw CheckpointError(path, t->name,
                            fmt::format("gap in the data section: bytes [{}, {}) belong to no tensor", cursor,
                                        t->begin));
    cursor = t->end;
    if (t->nbytes() > 0 || prev == nullptr) prev = t;
  }
  if (cursor != h.data_size)
    throw CheckpointError(path, "", fmt::format("data section is {} bytes but the tensors cover only {} "
                                                "(trailing bytes belong to no tensor)", h.data_size, cursor));
  // BOOL tensors must hold 0/1 bytes: anything else is undefined behaviour in a torch bool.
  for (const auto& t : h.tensors) {
    if (t.dtype != Dtype::BOOL) continue;
    const uint8_t* p = data + h.data_offset + t.begin;
    for (uint64_t i = 0; i < t.nbytes(); ++i)
      if (p[i] > 1)
        throw CheckpointError(path, t.name, fmt::format("BOOL element {} holds byte {}, expected 0 or 1", i, p[i]));
  }
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return h;
}

// --- SafetensorsFile ----------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError::from_errno(path.string(), "cannot open safetensors file");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    auto err = IoError::from_errno(path.string(), "cannot stat safetensors file");
    ::close(fd);
    throw err;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw CheckpointError(path.string(), "", "not a regular file");
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      auto err = IoError::from_errno(path.string(), "cannot memory-map safetensors file");
      ::close(fd);
      throw err;
    }
    map_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  try {
    static const uint8_t kEmpty = 0;
    header_ = parse_safetensors(map_ ? map_ : &kEmpty, size_, path.string());
  } catch (...) {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)), map_(o.map_), size_(o.size_), header_(std::move(o.header_)) {
  o.map_ = nullptr;
  o.size_ = 0;
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    size_ = o.size_;
    header_ = std::move(o.header_);
    o.map_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& t : header_.tensors) out.push_back(t.name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  auto it = std::lower_bound(header_.tensors.begin(), header_.tensors.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return it != header_.tensors.end() && it->name == name;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = std::lower_bound(header_.tensors.begin(), header_.tensors.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  if (it == header_.tensors.end() || it->name != name)
    throw CheckpointError(path_.string(), name, "no such tensor in the file");
  return *it;
}

namespace {

// The mapped pages of [p, p + n) leave this process once copied out (the file's page cache stays):
// without this, reading a checkpoint tensor by tensor would keep the whole file resident through
// the mapping, and a quantize-on-load of a 4.4 GB checkpoint peaked at 5.8 GB instead of near its
// quantized size. A page shared with a neighbouring tensor is simply read again if needed.
void drop_mapped_pages(const uint8_t* p, uint64_t n) {
  if (n == 0) return;
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const auto end = reinterpret_cast<uintptr_t>(p) + n;
  (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& t = info(name);
  auto out = torch::empty(t.shape, torch::TensorOptions().dtype(to_scalar_type(t.dtype)));
  if (t.nbytes() > 0) {
    std::memcpy(out.data_ptr(), map_ + header_.data_offset + t.begin, t.nbytes());
    drop_mapped_pages(map_ + header_.data_offset + t.begin, t.nbytes());
  }
  return out;
}

at::Tensor SafetensorsFile::flat_range(const std::string& name, int64_t begin, int64_t numel) const {
  const TensorInfo& t = info(name);
  BIOLM_CHECK(begin >= 0 && numel >= 0 && begin + numel <= t.numel(), CheckpointError, path_.string(), name,
              fmt::format("elements [{}, {}) requested, the tensor has {}", begin, begin + numel, t.numel()));
  const auto esize = static_cast<uint64_t>(dtype_size(t.dtype));
  auto out = torch::empty({numel}, torch::TensorOptions().dtype(to_scalar_type(t.dtype)));
  if (numel > 0) {
    std::memcpy(out.data_ptr(), map_ + header_.data_offset + t.begin + static_cast<uint64_t>(begin) * esize,
                static_cast<uint64_t>(numel) * esize);
    drop_mapped_pages(map_ + header_.data_offset + t.begin + static_cast<uint64_t>(begin) * esize,
                      static_cast<uint64_t>(numel) * esize);
  }
  return out;
}

std::map<std::string, at::Tensor> SafetensorsFile::load_all() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& t : header_.tensors) out.emplace(t.name, tensor(t.name));
  return out;
}

std::map<std::string, at::Tensor> load_safetensors(const std::filesystem::path& path,
                                                   std::map<std::string, std::string>* metadata) {
  SafetensorsFile f(path);
  if (metadata) *metadata = f.metadata();
  return f.load_all();
}

// --- writer -------------------------------------------------------------------------------------

namespace {

using Sink = std::function<void(const void*, std::size_t)>;

// The 8-byte length and the header. Written by hand so the bytes do not depend on a JSON
// library's choices: "__metadata__" first, then the tensors in name order (std::map order).
std::string header_bytes(const std::map<std::string, at::Tensor>& tensors,
                         const std::map<std::string, std::string>& metadata, const std::string& path) {
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& [k, v] : metadata) {
      header += (f2 ? "" : ",") + nlohmann::json(k).dump() + ":" + nlohmann::json(v).dump();
      f2 = false;
    }
    header += "}";
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& kv : tensors) {
    const std::string& name = kv.first;  // named variables: lambdas cannot capture bindings in C++17
    const at::Tensor& t = kv.second;
    if (name == "__metadata__") throw CheckpointError(path, name, "'__metadata__' is reserved and cannot name a tensor");
    if (!t.defined()) throw CheckpointError(path, name, "tensor is undefined");
    const Dtype dt = [&] {
      try {
        return from_scalar_type(t.scalar_type());
      } catch (const CheckpointError&) {
        throw CheckpointError(path, name, fmt::format("dtype {} cannot be stored in safetensors",
                                                      c10::toString(t.scalar_type())));
      }
    }();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(dt);
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    header += fmt::format("{}{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{},{}]}}", first ? "" : ",",
                          nlohmann::json(name).dump(), dtype_name(dt), nlohmann::json(shape).dump(), offset,
                          offset + nbytes);
    first = false;
    offset += nbytes;
  }
  header += "}";
  // Pad with spaces so the data section starts 8-byte aligned (8 + N is a multiple of 8).
  while (header.size() % 8 != 0) header += ' ';
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  return out + header;
}

// Header, then each tensor's bytes; one contiguous CPU copy at a time, so saving a model never
// needs a second copy of all of it in memory.
void emit(const std::map<std::string, at::Tensor>& tensors, const std::map<std::string, std::string>& metadata,
          const std::string& path, const Sink& sink) {
  const std::string head = header_bytes(tensors, metadata, path);
  sink(head.data(), head.size());
  for (const auto& kv : tensors) {
    const auto c = kv.second.detach().to(torch::kCPU).contiguous();
    const auto nbytes = static_cast<std::size_t>(c.numel()) * c.element_size();
    if (nbytes > 0) sink(c.data_ptr(), nbytes);
  }
}

}  // namespace

std::string serialize_safetensors(const std::map<std::string, at::Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::string out;
  emit(tensors, metadata, "<memory>",
       [&out](const void* p, std::size_t n) { out.append(static_cast<const char*>(p), n); });
  return out;
}

void save_safetensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  header_bytes(tensors, metadata, path.string());  // refuse bad input before creating any file
  write_file_atomic_stream(path, [&](const Sink& sink) { emit(tensors, metadata, path.string(), sink); });
}

// --- sharded ------------------------------------------------------------------------------------

std::vector<std::filesystem::path> save_sharded(const std::filesystem::path& dir,
                                                const std::map<std::string, at::Tensor>& tensors,
                                                const std::map<std::string, std::string>& metadata,
                                                const ShardOptions& options) {
  if (options.max_shard_bytes == 0) throw ConfigError("max_shard_bytes", "must be > 0");
  std::filesystem::create_directories(dir);
  // Greedy fill in name order, as transformers' split_torch_state_dict_into_shards does.
  std::vector<std::map<std::string, at::Tensor>> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (!shards.back().empty() && current + nbytes > options.max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().emplace(name, t);
    current += nbytes;
    total += nbytes;
  }
  std::vector<std::filesystem::path> written;
  if (shards.size() == 1) {
    written.push_back(dir / (options.stem + ".safetensors"));
    save_safetensors(written.back(), tensors, metadata);
    return written;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  const std::size_t n = shards.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::string file = fmt::format("{}-{:05d}-of-{:05d}.safetensors", options.stem, i + 1, n);
    save_safetensors(dir / file, shards[i], metadata);
    written.push_back(dir / file);
    for (const auto& kv : shards[i]) weight_map[kv.first] = file;
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  written.push_back(dir / (options.stem + ".safetensors.index.json"));
  write_file_atomic(written.back(), index.dump(2) + "\n");
  return written;
}

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  fs::path index_path;
  if (fs::is_directory(path)) {
    if (fs::exists(path / kSafetensorsIndexName)) {
      index_path = path / kSafetensorsIndexName;
    } else if (fs::exists(path / kSafetensorsSingleName)) {
      files_.emplace_back(path / kSafetensorsSingleName);
    } else {
      throw CheckpointError(path.string(), "",
                            fmt::format("directory holds neither {} nor {}", kSafetensorsSingleName,
                                        kSafetensorsIndexName));
    }
  } else if (path.string().size() > 5 && path.extension() == ".json") {
    index_path = path;
  } else {
    files_.emplace_back(path);
  }
  if (!index_path.empty()) {
    const nlohmann::json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw CheckpointError(index_path.string(), "", "index must be an object with a 'weight_map' object");
    std::map<std::string, std::size_t> file_index;
    std::map<std::string, std::string> listed;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string())
        throw CheckpointError(index_path.string(), name, "weight_map value must be a file name string");
      const auto f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == ".." || f.empty())
        throw CheckpointError(index_path.string(), name, fmt::format("shard name \"{}\" must be a plain file name", f));
      if (!file_index.count(f)) {
        file_index[f] = files_.size();
        files_.emplace_back(index_path.parent_path() / f);
      }
      listed[name] = f;
    }
    for (const auto& [name, f] : listed) {
      const auto& sf = files_[file_index[f]];
      if (!sf.contains(name))
        throw CheckpointError(sf.path().string(), name, "listed in the index for this shard but absent from it");
      where_[name] = file_index[f];
    }
    for (const auto& sf : files_)
      for (const auto& t : sf.tensors())
        if (!listed.count(t.name) || listed[t.name] != sf.path().filename().string())
          throw CheckpointError(sf.path().string(), t.name,
                                listed.count(t.name)
                                    ? fmt::format("also present here but the index assigns it to {}", listed[t.name])
                                    : std::string("present in the shard but not listed in the index"));
  } else {
    for (const auto& t : files_[0].tensors()) where_[t.name] = 0;
  }
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}
bool SafetensorsCheckpoint::contains(const std::string& name) const { return where_.count(name) > 0; }
const TensorInfo& SafetensorsCheckpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    throw CheckpointError(files_.empty() ? "" : files_[0].path().string(), name, "no such tensor in the checkpoint");
  return files_[it->second].info(name);
}
at::Tensor SafetensorsCheckpoint::tensor(const std::string& name) const {
  info(name);
  return files_[where_.at(name)].tensor(name);
}
std::map<std::string, at::Tensor> SafetensorsCheckpoint::load_all() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, i] : where_) out.emplace(name, files_[i].tensor(name));
  return out;
}
const std::map<std::string, std::string>& SafetensorsCheckpoint::metadata() const { return files_.at(0).metadata(); }
const std::filesystem::path& SafetensorsCheckpoint::file_of(const std::string& name) const {
  info(name);
  return files_[where_.at(name)].path();
}

nlohmann::json inspect_path(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw IoError(path.string(), "no such file or directory");
  SafetensorsCheckpoint ck(path);
  nlohmann::json out;
  out["path"] = path.string();
  out["format"] = "safetensors";
  out["files"] = nlohmann::json::array();
  for (const auto& f : ck.files()) out["files"].push_back(f.path().filename().string());
  out["metadata"] = ck.metadata();
  out["tensors"] = nlohmann::json::array();
  int64_t params = 0;
  uint64_t bytes = 0;
  for (const auto& name : ck.names()) {
    const auto& t = ck.info(name);
    out["tensors"].push_back({{"name", name},
                              {"dtype", std::string(dtype_name(t.dtype))},
                              {"shape", t.shape},
                              {"parameters", t.numel()},
                              {"file", ck.file_of(name).filename().string()}});
    params += t.numel();
    bytes += t.nbytes();
  }
  out["parameters"] = params;
  out["bytes"] = bytes;
  const fs::path dir = fs::is_directory(path) ? path : path.parent_path();
  if (fs::exists(dir / "config.json")) {
    const auto cfg = read_json_file(dir / "config.json");
    nlohmann::json c = nlohmann::json::object();
    if (cfg.is_object()) {
      for (const char* k : {"model_type", "architectures", "hidden_size", "num_hidden_layers", "vocab_size"})
        if (cfg.contains(k)) c[k] = cfg[k];
    }
    out["config"] = c;
  }
  return out;
}

}  // namespace biolm::io
