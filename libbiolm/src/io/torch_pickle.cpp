// PyTorch zip-format state dicts (see torch_pickle.h): a restricted pickle machine (protocols 2-4,
// the opcodes Python's pickle module writes for dicts, tuples, strings, numbers and tensors;
// opcode meanings from CPython Lib/pickletools.py) over caffe2's zip reader.
#include "biolm/io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <optional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "biolm/core/error.h"

namespace biolm::io {
namespace {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0.0;
  std::string s;  // String; Global: "module.name"
  std::vector<ValuePtr> items;                          // Tuple, List
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // Dict (insertion order)
  at::Tensor tensor;                                   // Storage (1-D), Tensor
};

ValuePtr make(Value::Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Global: return "global";
    case Value::Kind::Storage: return "storage";
    case Value::Kind::Tensor: return "tensor";
  }
  return "?";
}

/// torch.<Name>Storage -> dtype (torch/storage.py's typed storages).
std::optional<at::ScalarType> storage_dtype(const std::string& global) {
  static const std::pair<const char*, at::ScalarType> kTypes[] = {
      {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong},  {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool}};
  for (const auto& [name, dtype] : kTypes) {
    if (global == name) return dtype;
  }
  return std::nullopt;
}

class Machine {
 public:
  Machine(const std::string& origin, const char* data, size_t size, caffe2::serialize::PyTorchStreamReader& zip)
      : origin_(origin), begin_(data), p_(data), end_(data + size), zip_(zip) {}

  ValuePtr run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;    // PROTO
        case 0x95: bytes(8); break;  // FRAME: length only
        case '.':                    // STOP
          BIOLM_CHECK(stack_.size() == 1, CheckpointError, origin_, "", "malformed pickle: stack not 1 at STOP");
          return stack_.back();
        case 'c': {  // GLOBAL module\nname\n
          const std::string module = line(), name = line();
          push_global(module + "." + name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          BIOLM_CHECK(name->kind == Value::Kind::String && module->kind == Value::Kind::String, CheckpointError, origin_,
                      "", "malformed pickle: STACK_GLOBAL needs two strings");
          push_global(module->s + "." + name->s);
          break;
        }
        case 'q': memo_[byte()] = top(); break;                   // BINPUT
        case 'r': memo_[uint_le(4)] = top(); break;               // LONG_BINPUT
        case 0x94: memo_[static_cast<int64_t>(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': push(memo(byte())); break;                      // BINGET
        case 'j': push(memo(uint_le(4))); break;                  // LONG_BINGET
        case '(': marks_.push_back(stack_.size()); break;         // MARK
        case ')': push(make(Value::Kind::Tuple)); break;          // EMPTY_TUPLE
        case ']': push(make(Value::Kind::List)); break;           // EMPTY_LIST
        case '}': push(make(Value::Kind::Dict)); break;           // EMPTY_DICT
        case 't': {                                               // TUPLE
          auto t = make(Value::Kind::Tuple);
          t->items = pop_to_mark();
          push(t);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          auto t = make(Value::Kind::Tuple);
          t->items.resize(op - 0x84);
          for (size_t k = t->items.size(); k-- > 0;) t->items[k] = pop();
          push(t);
          break;
        }
        case 'a': {  // APPEND
          auto v = pop();
          expect(top(), Value::Kind::List, "APPEND")->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto vs = pop_to_mark();
          auto& list = expect(top(), Value::Kind::List, "APPENDS")->items;
          list.insert(list.end(), vs.begin(), vs.end());
          break;
        }
        case 's': {  // SETITEM
          auto v = pop(), k = pop();
          expect(top(), Value::Kind::Dict, "SETITEM")->entries.emplace_back(k, v);
          break;
        }
        case 'u': {  // SETITEMS
          auto kv = pop_to_mark();
          BIOLM_CHECK(kv.size() % 2 == 0, CheckpointError, origin_, "", "malformed pickle: odd SETITEMS");
          auto dict = expect(top(), Value::Kind::Dict, "SETITEMS");
          for (size_t k = 0; k < kv.size(); k += 2) dict->entries.emplace_back(kv[k], kv[k + 1]);
          break;
        }
        case 'X': push_string(uint_le(4)); break;   // BINUNICODE
        case 0x8c: push_string(byte()); break;      // SHORT_BINUNICODE
        case 0x8d: push_string(uint_le(8)); break;  // BINUNICODE8
        case 'U': push_string(byte()); break;       // SHORT_BINSTRING
        case 'T': push_string(uint_le(4)); break;   // BINSTRING
        case 'J': push_int(static_cast<int32_t>(uint_le(4))); break;  // BININT
        case 'K': push_int(byte()); break;                            // BININT1
        case 'M': push_int(uint_le(2)); break;                        // BININT2
        case 0x8a: {                                                  // LONG1: little-endian two's complement
          const size_t n = byte();
          BIOLM_CHECK(n <= 8, CheckpointError, origin_, "", fmt::format("integer of {} bytes does not fit 64 bits", n));
          const char* b = bytes(n);
          uint64_t u = 0;
          for (size_t k = 0; k < n; ++k) u |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
          if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) u |= ~uint64_t{0} << (8 * n);
          push_int(static_cast<int64_t>(u));
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          const char* b = bytes(8);
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | static_cast<uint8_t>(b[k]);
          auto v = make(Value::Kind::Float);
          std::memcpy(&v->f, &u, sizeof(double));
          push(v);
          break;
        }
        case 'N': push(make(Value::Kind::None)); break;
        case 0x88:
        case 0x89: {  // NEWTRUE / NEWFALSE
          auto v = make(Value::Kind::Bool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case '0': pop(); break;           // POP
        case '1': pop_to_mark(); break;   // POP_MARK
        case '2': push(top()); break;     // DUP
        case 'Q': push(storage(pop())); break;  // BINPERSID
        case 'R': {                              // REDUCE
          auto args = expect(pop(), Value::Kind::Tuple, "REDUCE");
          auto fn = expect(pop(), Value::Kind::Global, "REDUCE");
          push(reduce(fn->s, args->items));
          break;
        }
        case 'b': {  // BUILD: the state of a dict (OrderedDict._metadata) or tensor is not needed
          pop();
          const auto k = top()->kind;
          BIOLM_CHECK(k == Value::Kind::Dict || k == Value::Kind::Tensor, CheckpointError, origin_, "",
                      fmt::format("BUILD on a {} is not part of a state dict", kind_name(k)));
          break;
        }
        default:
          throw CheckpointError(origin_, "", fmt::format("pickle opcode 0x{:02x} is not part of a state dict "
                                                         "(offset {})",
                                                         op, offset() - 1));
      }
    }
  }

 private:
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }
  const char* bytes(size_t n) {
    BIOLM_CHECK(static_cast<size_t>(end_ - p_) >= n, CheckpointError, origin_, "", "truncated pickle");
    const char* b = p_;
    p_ += n;
    return b;
  }
  uint8_t byte() { return static_cast<uint8_t>(*bytes(1)); }
  uint64_t uint_le(size_t n) {
    const char* b = bytes(n);
    uint64_t u = 0;
    for (size_t k = 0; k < n; ++k) u |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
    return u;
  }
  std::string line() {
    const char* nl = static_cast<const char*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
    BIOLM_CHECK(nl != nullptr, CheckpointError, origin_, "", "truncated pickle (GLOBAL)");
    std::string s(p_, nl);
    p_ = nl + 1;
    return s;
  }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  void push_int(int64_t i) {
    auto v = make(Value::Kind::Int);
    v->i = i;
    push(v);
  }
  void push_string(uint64_t n) {
    auto v = make(Value::Kind::String);
    const char* b = bytes(n);
    v->s.assign(b, n);
    push(v);
  }
  void push_global(const std::string& name) {
    static const char* kAllowed[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                     "torch._utils._rebuild_parameter", "builtins.dict",
                                     "torch.jit._pickle.restore_type_tag"};
    bool ok = storage_dtype(name).has_value();
    for (const char* a : kAllowed) ok = ok || name == a;
    BIOLM_CHECK(ok, CheckpointError, origin_, "",
                fmt::format("the pickle names {}, which is not part of a plain state dict of tensors (refused: "
                            "unpickling it could run code)",
                            name));
    auto v = make(Value::Kind::Global);
    v->s = name;
    push(v);
  }
  ValuePtr top() {
    BIOLM_CHECK(!stack_.empty(), CheckpointError, origin_, "", "malformed pickle: empty stack");
    return stack_.back();
  }
  ValuePtr pop() {
    auto v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> pop_to_mark() {
    BIOLM_CHECK(!marks_.empty() && marks_.back() <= stack_.size(), CheckpointError, origin_, "",
                "malformed pickle: no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  ValuePtr memo(uint64_t k) {
    const auto it = memo_.find(static_cast<int64_t>(k));
    BIOLM_CHECK(it != memo_.end(), CheckpointError, origin_, "", fmt::format("malformed pickle: memo {} unset", k));
    return it->second;
  }
  ValuePtr expect(ValuePtr v, Value::Kind kind, const char* op) {
    BIOLM_CHECK(v->kind == kind, CheckpointError, origin_, "",
                fmt::format("malformed pickle: {} needs a {}, found a {}", op, kind_name(kind), kind_name(v->kind)));
    return v;
  }
  static std::vector<int64_t> ints(const ValuePtr& t, const std::string& origin) {
    BIOLM_CHECK(t->kind == Value::Kind::Tuple, CheckpointError, origin, "", "tensor sizes/strides must be a tuple");
    std::vector<int64_t> out;
    for (const auto& v : t->items) {
      BIOLM_CHECK(v->kind == Value::Kind::Int, CheckpointError, origin, "", "tensor sizes/strides must be integers");
      out.push_back(v->i);
    }
    return out;
  }

  // ('storage', torch.<Type>Storage, key, location, numel) -> the record data/<key> as a 1-D tensor.
  ValuePtr storage(const ValuePtr& pid) {
    const auto& t = expect(pid, Value::Kind::Tuple, "BINPERSID")->items;
    BIOLM_CHECK(t.size() == 5 && t[0]->kind == Value::Kind::String && t[0]->s == "storage" &&
                    t[1]->kind == Value::Kind::Global && t[2]->kind == Value::Kind::String &&
                    t[4]->kind == Value::Kind::Int,
                CheckpointError, origin_, "", "persistent id is not ('storage', type, key, location, numel)");
    const auto dtype = storage_dtype(t[1]->s);
    BIOLM_CHECK(dtype.has_value(), CheckpointError, origin_, "", fmt::format("{} is not a storage type", t[1]->s));
    const std::string& key = t[2]->s;
    auto& cached = storages_[key];
    if (!cached) {
      const std::string record = "data/" + key;
      BIOLM_CHECK(zip_.hasRecord(record), CheckpointError, origin_, record, "storage record missing from the archive");
      auto [ptr, size] = zip_.getRecord(record);
      const int64_t numel = t[4]->i;
      const size_t need = static_cast<size_t>(numel) * c10::elementSize(*dtype);
      BIOLM_CHECK(numel >= 0 && size >= need, CheckpointError, origin_, record,
                  fmt::format("storage of {} elements needs {} bytes, the record has {}", numel, need, size));
      cached = make(Value::Kind::Storage);
      cached->tensor = at::from_blob(ptr.get(), {numel}, at::TensorOptions().dtype(*dtype)).clone();
    }
    return cached;
  }

  ValuePtr reduce(const std::string& fn, const std::vector<ValuePtr>& args) {
    if (fn == "collections.OrderedDict" || fn == "builtins.dict") {
      BIOLM_CHECK(args.empty(), CheckpointError, origin_, "", fmt::format("{} with arguments", fn));
      return make(Value::Kind::Dict);
    }
    if (fn == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      BIOLM_CHECK(args.size() >= 4 && args[0]->kind == Value::Kind::Storage && args[1]->kind == Value::Kind::Int,
                  CheckpointError, origin_, "", "_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)");
      const auto size = ints(args[2], origin_), stride = ints(args[3], origin_);
      BIOLM_CHECK(size.size() == stride.size(), CheckpointError, origin_, "", "tensor size and stride differ in rank");
      const auto& storage = args[0]->tensor;
      int64_t last = args[1]->i;  // the highest element index the view touches must lie in the storage
      bool empty = false;
      for (size_t d = 0; d < size.size(); ++d) {
        BIOLM_CHECK(size[d] >= 0 && stride[d] >= 0, CheckpointError, origin_, "", "negative tensor size or stride");
        if (size[d] == 0) empty = true;
        last += (size[d] - 1) * stride[d];
      }
      BIOLM_CHECK(args[1]->i >= 0 && (empty || last < storage.numel()), CheckpointError, origin_, "",
                  fmt::format("tensor view (offset {}) runs past its storage of {} elements", args[1]->i,
                              storage.numel()));
      auto v = make(Value::Kind::Tensor);
      v->tensor = empty ? at::empty(size, storage.options()) : storage.as_strided(size, stride, args[1]->i).contiguous();
      return v;
    }
    if (fn == "torch.jit._pickle.restore_type_tag") {  // (value, type string): LibTorch's pickle_save
      // tags a typed Dict/List with its TorchScript type; in Python it returns the value itself.
      BIOLM_CHECK(args.size() == 2 && args[1]->kind == Value::Kind::String, CheckpointError, origin_, "",
                  "restore_type_tag needs (value, type string)");
      return args[0];
    }
    if (fn == "torch._utils._rebuild_parameter") {  // (data, requires_grad, backward_hooks)
      BIOLM_CHECK(!args.empty() && args[0]->kind == Value::Kind::Tensor, CheckpointError, origin_, "",
                  "_rebuild_parameter needs a tensor");
      return args[0];
    }
    throw CheckpointError(origin_, "", fmt::format("{} cannot be called while reading a state dict", fn));
  }

  std::string origin_;
  const char* begin_;
  const char* p_;
  const char* end_;
  caffe2::serialize::PyTorchStreamReader& zip_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<int64_t, ValuePtr> memo_;
  std::unordered_map<std::string, ValuePtr> storages_;
};

}  // namespace

std::map<std::string, at::Tensor> read_torch_state_dict(const std::filesystem::path& file) {
  const std::string origin = file.string();
  {
    std::ifstream in(file, std::ios::binary);
    BIOLM_CHECK(in.good(), CheckpointError, origin, "", "cannot open the file");
    char magic[2] = {0, 0};
    in.read(magic, 2);
    BIOLM_CHECK(in.gcount() == 2 && magic[0] == 'P' && magic[1] == 'K', CheckpointError, origin, "",
                "not a zip archive: only the format torch.save writes since PyTorch 1.6 is read (the legacy "
                "tar/pickle format is not); re-save it with torch.save or save_pretrained(safe_serialization=True)");
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(origin);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw CheckpointError(origin, "", fmt::format("cannot read the zip archive ({}); convert it to safetensors: "
                                                  "save_pretrained(DIR, safe_serialization=True)",
                                                  what.substr(0, what.find('\n'))));
  }
  BIOLM_CHECK(zip->hasRecord("data.pkl"), CheckpointError, origin, "data.pkl",
              "no data.pkl in the archive: not a torch.save file (a TorchScript archive?)");
  if (zip->hasRecord("byteorder")) {
    auto [ptr, size] = zip->getRecord("byteorder");
    const std::string order(static_cast<const char*>(ptr.get()), size);
    BIOLM_CHECK(order == "little", CheckpointError, origin, "byteorder",
                fmt::format("storages are {}-endian; only little-endian files are read", order));
  }
  auto [pkl, pkl_size] = zip->getRecord("data.pkl");
  ValuePtr root;
  try {
    root = Machine(origin, static_cast<const char*>(pkl.get()), pkl_size, *zip).run();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw CheckpointError(origin, "", fmt::format("cannot read a storage ({})", what.substr(0, what.find('\n'))));
  }
  BIOLM_CHECK(root->kind == Value::Kind::Dict, CheckpointError, origin, "",
              fmt::format("expected a dict of tensors (a state dict), found a {}", kind_name(root->kind)));
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : root->entries) {
    BIOLM_CHECK(k->kind == Value::Kind::String, CheckpointError, origin, "", "a state dict key is not a string");
    BIOLM_CHECK(v->kind == Value::Kind::Tensor, CheckpointError, origin, k->s,
                fmt::format("expected a tensor, found a {}", kind_name(v->kind)));
    BIOLM_CHECK(!out.count(k->s), CheckpointError, origin, k->s, "key listed twice");
    out[k->s] = v->tensor;
  }
  return out;
}

}  // namespace biolm::io
