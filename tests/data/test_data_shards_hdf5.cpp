// HDF5 token shards: round trip, prepare_shards + manifest, packed dataset over files, and the
// errors for a mixed tokenizer or a foreign file.
#include <H5Cpp.h>
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "biolm/core/error.h"
#include "biolm/data/collate.h"
#include "biolm/data/shards.h"
#include "support/test_util.h"
#include "test_tokenizer.h"

using namespace biolm;
using namespace biolm::data;

TEST_CASE("HDF5 shard round trip keeps tokens, offsets, word starts and metadata", "[data][hdf5]") {
  test::TempDir dir("shard");
  TokenShard s;
  s.meta.tokenizer_fingerprint = "fp-1";
  s.meta.tokenizer_kind = "wordpiece";
  s.meta.vocab_size = 30522;
  s.meta.shard_index = 3;
  s.meta.has_word_starts = true;
  s.meta.n_text_bytes = 12345;
  s.doc_offsets = {0};
  for (int d = 0; d < 50; ++d) {
    for (int t = 0; t < 100 + d; ++t) {
      s.tokens.push_back((d * 7919 + t * 31) % 30522);
      s.word_starts.push_back(t % 3 == 0);
    }
    s.doc_offsets.push_back(static_cast<int64_t>(s.tokens.size()));
  }
  s.meta.n_tokens = static_cast<int64_t>(s.tokens.size());
  s.meta.n_documents = 50;
  const auto path = (dir / "s.h5").string();
  write_shard(path, s);
  const auto back = read_shard(path);
  CHECK(back.tokens == s.tokens);
  CHECK(back.doc_offsets == s.doc_offsets);
  CHECK(back.word_starts == s.word_starts);
  CHECK(back.meta.tokenizer_fingerprint == "fp-1");
  CHECK(back.meta.tokenizer_kind == "wordpiece");
  CHECK(back.meta.vocab_size == 30522);
  CHECK(back.meta.n_tokens == s.meta.n_tokens);
  CHECK(back.meta.n_documents == 50);
  CHECK(back.meta.n_text_bytes == 12345);
  CHECK(back.meta.shard_index == 3);
  CHECK(back.meta.format_version == kShardFormatVersion);
  {  // the datasets are chunked and compressed
    H5::H5File f(path, H5F_ACC_RDONLY);
    const auto plist = f.openDataSet("tokens").getCreatePlist();
    CHECK(plist.getLayout() == H5D_CHUNKED);
    CHECK(plist.getNfilters() == 2);  // shuffle + deflate
  }
  // A token outside the vocabulary is refused before writing.
  auto bad = s;
  bad.tokens[10] = 40000;
  CHECK_THROWS_AS(write_shard((dir / "bad.h5").string(), bad), DataError);
  // A foreign HDF5 file is named as such.
  {
    H5::H5File f((dir / "other.h5").string(), H5F_ACC_TRUNC);
  }
  try {
    read_shard((dir / "other.h5").string());
    FAIL("expected a DataError");
  } catch (const DataError& e) {
    CHECK(e.field() == "format");
  }
}

TEST_CASE("prepare_shards writes shards + manifest, packed sequences read back from files", "[data][hdf5]") {
  test::TempDir dir("prepare");
  std::string text, blocks;
  for (int i = 0; i < 120; ++i) {
    text += "document " + std::to_string(i) + " about cells and proteins number " + std::to_string(i * 7) + "\n";
  }
  test::write_text(dir / "corpus.txt", text);
  test::write_text(dir / "notes.jsonl", "{\"text\": \"one note\"}\n{\"text\": \"another clinical note\"}\n");
  auto tok = std::make_shared<test::PieceTokenizer>();
  PrepareOptions o;
  o.out_dir = (dir / "shards").string();
  o.sharding.tokens_per_shard = 600;
  o.sharding.n_workers = 2;
  o.sharding.docs_per_task = 8;
  o.sharding.word_starts = true;
  const auto rep = prepare_shards({{CorpusFormat::Text, (dir / "corpus.txt").string()},
                                   {CorpusFormat::Jsonl, (dir / "notes.jsonl").string()}},
                                  tok, o);
  CHECK(rep.sharding.n_documents == 122);
  CHECK(rep.read.records == 122);
  REQUIRE(rep.shard_files.size() >= 3);
  const auto manifest = nlohmann::json::parse(test::read_text(dir / "shards" / "manifest.json"));
  CHECK(manifest["n_documents"] == 122);
  CHECK(manifest["n_tokens"] == rep.sharding.n_tokens);
  CHECK(manifest["tokenizer_fingerprint"] == "test-pieces-3");
  CHECK(manifest["shards"].size() == rep.shard_files.size());
  int64_t tokens = 0;
  for (const auto& f : rep.shard_files) tokens += read_shard_meta((dir / "shards" / f).string()).n_tokens;
  CHECK(tokens == rep.sharding.n_tokens);
  // The last document, as written, equals encode() of the last JSONL text.
  const auto last = read_shard((dir / "shards" / rep.shard_files.back()).string());
  const std::vector<int64_t> got(last.tokens.end() - (last.doc_offsets.back() - last.doc_offsets[last.doc_offsets.size() - 2]), last.tokens.end());
  CHECK(got == tok->encode("another clinical note").ids);

  PackOptions po;
  po.seq_len = 64;
  po.max_cached_shards = 1;
  const auto ds = open_packed_dataset((dir / "shards").string(), po);
  int64_t expect_seqs = 0;
  std::vector<TokenShard> shards;
  for (const auto& f : rep.shard_files) {
    shards.push_back(read_shard((dir / "shards" / f).string()));
    expect_seqs += (shards.back().meta.n_tokens + 63) / 64;
  }
  REQUIRE(ds->size() == expect_seqs);
  for (int64_t i = 0; i < ds->size(); ++i) {
    const auto& r = ds->ref(i);
    const auto f = ds->get(i);
    const auto& sh = shards[static_cast<size_t>(r.shard)];
    REQUIRE(r.end <= sh.meta.n_tokens);  // never past its own shard
    REQUIRE(f.input_ids == std::vector<int64_t>(sh.tokens.begin() + r.begin, sh.tokens.begin() + r.end));
    REQUIRE(f.word_starts.size() == f.input_ids.size());
  }
  MlmOptions m;
  m.mask_id = 4;
  m.vocab_size = tok->vocab_size();
  m.never_mask = {0, 1, 2, 3, 4};
  m.whole_word = true;
  const auto batch = collate_mlm({ds->get(0), ds->get(1)}, {}, m, 5);
  CHECK(batch.at("input_ids").sizes() == torch::IntArrayRef({2, 64}));
  CHECK(batch.n_target_tokens > 0);

  // A shard written by another tokenizer cannot join the set.
  CHECK_THROWS_AS(open_packed_dataset((dir / "shards").string(), po, std::string("another-tokenizer")), DataError);
}
