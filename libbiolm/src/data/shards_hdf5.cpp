// HDF5 token shards (format in docs/data_formats.md), prepare_shards and open_packed_dataset.
//
// Debian's HDF5 is not built thread-safe, so every HDF5 call here holds one process-wide mutex
// (the loader's prefetch thread may load shards while the main thread writes others).
#include <H5Cpp.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/core/version.h"
#include "biolm/data/shards.h"

namespace biolm::data {
namespace {

std::mutex& h5_mutex() {
  static std::mutex m;
  return m;
}

void put_attr(H5::H5Object& obj, const std::string& name, int64_t v) {
  H5::DataSpace scalar(H5S_SCALAR);
  obj.createAttribute(name, H5::PredType::NATIVE_INT64, scalar).write(H5::PredType::NATIVE_INT64, &v);
}
void put_attr(H5::H5Object& obj, const std::string& name, const std::string& v) {
  H5::DataSpace scalar(H5S_SCALAR);
  H5::StrType type(H5::PredType::C_S1, std::max<size_t>(1, v.size()));
  obj.createAttribute(name, type, scalar).write(type, v.empty() ? std::string(1, '\0') : v);
}
int64_t get_int(const H5::H5Object& obj, const std::string& path, const std::string& name) {
  if (!obj.attrExists(name)) throw DataError::at_record(path, 0, name, "attribute missing");
  int64_t v = 0;
  obj.openAttribute(name).read(H5::PredType::NATIVE_INT64, &v);
  return v;
}
std::string get_str(const H5::H5Object& obj, const std::string& path, const std::string& name) {
  if (!obj.attrExists(name)) throw DataError::at_record(path, 0, name, "attribute missing");
  auto a = obj.openAttribute(name);
  std::string v;
  a.read(a.getStrType(), v);
  return v.c_str();  // drop padding NULs
}

template <typename T>
void write_1d(H5::H5File& f, const std::string& name, const std::vector<T>& data, const H5::PredType& type, int deflate) {
  const hsize_t n = data.size();
  const hsize_t dims[1] = {n};
  H5::DataSpace space(1, dims);
  H5::DSetCreatPropList plist;
  if (n > 0) {
    const hsize_t chunk[1] = {std::min<hsize_t>(n, 1 << 16)};
    plist.setChunk(1, chunk);
    plist.setShuffle();
    plist.setDeflate(deflate);
  }
  auto ds = f.createDataSet(name, type, space, plist);
  if (n > 0) ds.write(data.data(), type);
}

template <typename T>
std::vector<T> read_1d(H5::H5File& f, const std::string& path, const std::string& name, const H5::PredType& type) {
  if (!f.nameExists(name)) throw DataError::at_record(path, 0, name, "dataset missing");
  auto ds = f.openDataSet(name);
  auto space = ds.getSpace();
  if (space.getSimpleExtentNdims() != 1) throw DataError::at_record(path, 0, name, "expected a 1-d dataset");
  hsize_t n = 0;
  space.getSimpleExtentDims(&n);
  std::vector<T> out(n);
  if (n > 0) ds.read(out.data(), type);
  return out;
}

ShardMeta read_meta(H5::H5File& f, const std::string& path) {
  const std::string format = get_str(f, path, "format");
  if (format != kShardFormatName) {
    throw DataError::at_record(path, 0, "format", "expected \"" + std::string(kShardFormatName) + "\", found \"" + format + "\"");
  }
  ShardMeta m;
  m.format_version = get_int(f, path, "format_version");
  if (m.format_version != kShardFormatVersion) {
    throw DataError::at_record(path, 0, "format_version", "this libbiolm reads version " + std::to_string(kShardFormatVersion) +
                                                              ", the file is version " + std::to_string(m.format_version) +
                                                              " (re-run `biolm data prepare`)");
  }
  m.tokenizer_fingerprint = get_str(f, path, "tokenizer_fingerprint");
  m.tokenizer_kind = get_str(f, path, "tokenizer_kind");
  m.vocab_size = get_int(f, path, "vocab_size");
  m.n_tokens = get_int(f, path, "n_tokens");
  m.n_documents = get_int(f, path, "n_documents");
  m.n_text_bytes = get_int(f, path, "n_text_bytes");
  m.shard_index = get_int(f, path, "shard_index");
  m.has_word_starts = get_int(f, path, "has_word_starts") != 0;
  return m;
}

template <typename Fn>
auto guarded(const std::string& path, Fn fn) {
  std::lock_guard<std::mutex> lock(h5_mutex());
  try {
    return fn();
  } catch (const H5::Exception& e) {
    throw IoError(path, "HDF5: " + e.getDetailMsg());
  }
}

}  // namespace

void write_shard(const std::string& path, const TokenShard& shard, int deflate_level) {
  shard.validate(path);
  guarded(path, [&] {
    H5::H5File f(path, H5F_ACC_TRUNC);
    write_1d(f, "tokens", shard.tokens, H5::PredType::NATIVE_INT32, deflate_level);
    write_1d(f, "doc_offsets", shard.doc_offsets, H5::PredType::NATIVE_INT64, deflate_level);
    if (shard.meta.has_word_starts) write_1d(f, "word_starts", shard.word_starts, H5::PredType::NATIVE_UINT8, deflate_level);
    const auto& m = shard.meta;
    put_attr(f, "format", std::string(kShardFormatName));
    put_attr(f, "format_version", m.format_version);
    put_attr(f, "tokenizer_fingerprint", m.tokenizer_fingerprint);
    put_attr(f, "tokenizer_kind", m.tokenizer_kind);
    put_attr(f, "vocab_size", m.vocab_size);
    put_attr(f, "n_tokens", m.n_tokens);
    put_attr(f, "n_documents", m.n_documents);
    put_attr(f, "n_text_bytes", m.n_text_bytes);
    put_attr(f, "shard_index", m.shard_index);
    put_attr(f, "has_word_starts", int64_t{m.has_word_starts ? 1 : 0});
    put_attr(f, "created_by", "libbiolm " + version());
    return 0;
  });
}

ShardMeta read_shard_meta(const std::string& path) {
  if (!std::filesystem::exists(path)) throw IoError(path, "no such shard file");
  return guarded(path, [&] {
    H5::H5File f(path, H5F_ACC_RDONLY);
    return read_meta(f, path);
  });
}

TokenShard read_shard(const std::string& path) {
  if (!std::filesystem::exists(path)) throw IoError(path, "no such shard file");
  TokenShard s = guarded(path, [&] {
    H5::H5File f(path, H5F_ACC_RDONLY);
    TokenShard t;
    t.meta = read_meta(f, path);
    t.tokens = read_1d<int32_t>(f, path, "tokens", H5::PredType::NATIVE_INT32);
    t.doc_offsets = read_1d<int64_t>(f, path, "doc_offsets", H5::PredType::NATIVE_INT64);
    if (t.meta.has_word_starts) t.word_starts = read_1d<uint8_t>(f, path, "word_starts", H5::PredType::NATIVE_UINT8);
    return t;
  });
  s.validate(path);
  return s;
}

PrepareReport prepare_shards(const std::vector<std::pair<CorpusFormat, std::string>>& inputs,
                             std::shared_ptr<const tokenize::Tokenizer> tokenizer, const PrepareOptions& opts) {
  BIOLM_CHECK(tokenizer != nullptr, ConfigError, "data.tokenizer", "no tokenizer given");
  BIOLM_CHECK(!opts.out_dir.empty(), ConfigError, "data.out_dir", "no output directory given");
  std::filesystem::create_directories(opts.out_dir);
  PrepareReport report;
  // Pull records from the (push-style) corpus readers one file at a time, through a small
  // buffer: bounded by one file's worth only for formats whose reader is not streaming.
  size_t input = 0;
  std::deque<TextRecord> buffer;
  const auto next = [&](TextRecord& out) -> bool {
    while (buffer.empty() && input < inputs.size()) {
      const auto& [format, path] = inputs[input++];
      log::info("prepare: reading {}", path);
      report.read.merge(read_corpus(format, path, [&](TextRecord&& r) { buffer.push_back(std::move(r)); }, opts.corpus));
    }
    if (buffer.empty()) return false;
    out = std::move(buffer.front());
    buffer.pop_front();
    return true;
  };
  report.sharding = tokenize_to_shards(next, *tokenizer, opts.sharding, [&](TokenShard&& shard) {
    char name[64];
    std::snprintf(name, sizeof name, "%s_%05lld.h5", opts.prefix.c_str(), static_cast<long long>(shard.meta.shard_index));
    const auto path = (std::filesystem::path(opts.out_dir) / name).string();
    write_shard(path, shard, opts.deflate_level);
    log::info("prepare: wrote {} ({} documents, {} tokens)", path, shard.meta.n_documents, shard.meta.n_tokens);
    report.shard_files.push_back(name);
  });
  nlohmann::json manifest = {
      {"format", kShardFormatName},
      {"format_version", kShardFormatVersion},
      {"tokenizer_fingerprint", tokenizer->fingerprint()},
      {"tokenizer_kind", tokenizer->kind()},
      {"vocab_size", tokenizer->vocab_size()},
      {"n_documents", report.sharding.n_documents},
      {"n_tokens", report.sharding.n_tokens},
      {"n_text_bytes", report.sharding.n_text_bytes},
      {"n_too_short", report.sharding.n_too_short},
      {"records_skipped", report.read.skipped},
      {"word_starts", opts.sharding.word_starts},
      {"add_special", opts.sharding.add_special},
      {"shards", report.shard_files},
      {"created_by", "libbiolm " + version()}};
  nlohmann::json in = nlohmann::json::array();
  for (const auto& [format, path] : inputs) in.push_back(path);
  manifest["inputs"] = in;
  std::ofstream(std::filesystem::path(opts.out_dir) / "manifest.json") << manifest.dump(2) << "\n";
  return report;
}

std::shared_ptr<PackedDataset> open_packed_dataset(const std::string& dir, const PackOptions& opts,
                                                   const std::optional<std::string>& expected_fingerprint) {
  const auto manifest_path = (std::filesystem::path(dir) / "manifest.json").string();
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(read_file(manifest_path));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(manifest_path, 0, "json", e.what());
  }
  if (!manifest.contains("shards") || !manifest["shards"].is_array()) {
    throw DataError(manifest_path, 0, "shards", "expected a list of shard files");
  }
  std::vector<std::string> paths;
  std::vector<int64_t> n_tokens;
  std::string fingerprint = expected_fingerprint.value_or("");
  for (const auto& name : manifest["shards"]) {
    const auto path = (std::filesystem::path(dir) / name.get<std::string>()).string();
    const auto meta = read_shard_meta(path);
    if (fingerprint.empty()) fingerprint = meta.tokenizer_fingerprint;
    if (meta.tokenizer_fingerprint != fingerprint) {
      throw DataError::at_record(path, meta.shard_index, "tokenizer_fingerprint",
                                 "\"" + meta.tokenizer_fingerprint + "\" differs from \"" + fingerprint +
                                     "\": shards of different tokenizers cannot be mixed");
    }
    paths.push_back(path);
    n_tokens.push_back(meta.n_tokens);
  }
  return std::make_shared<PackedDataset>(
      std::move(n_tokens), [paths](int64_t s) { return std::make_shared<const TokenShard>(read_shard(paths.at(static_cast<size_t>(s)))); },
      opts);
}

}  // namespace biolm::data
