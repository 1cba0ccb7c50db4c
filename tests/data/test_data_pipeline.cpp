// Alignment, windows, MLM/CLM, packing, collation, the loader (resume, ranks) and parallel
// sharding, with the test tokenizer of test_tokenizer.h.
#include <catch2/catch.hpp>

#include <set>

#include "biolm/core/error.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/data/shards.h"
#include "support/test_util.h"
#include "test_tokenizer.h"

using namespace biolm;
using namespace biolm::data;

TEST_CASE("NER alignment: word labels -> pieces -> windows -> words recovers the gold spans", "[data][align]") {
  test::PieceTokenizer tok(3);
  NerSentence s;
  s.words = {"Germline", "mutations", "in", "BRCA1", "cause", "hereditary", "breast", "cancer", "and",
             "ovarian", "cancer", ".", "Ataxia", "-", "telangiectasia", "too"};
  s.tags = {"O", "O", "O", "B-Gene", "O", "B-Disease", "I-Disease", "I-Disease", "O",
            "B-Disease", "I-Disease", "O", "B-Disease", "I-Disease", "I-Disease", "O"};
  const auto labels = LabelMap::from_types({"Disease", "Gene"});
  CHECK(labels.names() == std::vector<std::string>{"O", "B-Disease", "I-Disease", "B-Gene", "I-Gene"});
  const auto gold = tags_to_spans(s.tags);
  for (const auto pieces : {LabelPieces::First, LabelPieces::All}) {
    NerFeatureOptions o;
    o.max_length = 10;  // 8 content tokens per window: the ~30 pieces need several windows
    o.overlap = 3;
    o.pieces = pieces;
    const auto windows = ner_features(s, 0, tok, labels, o);
    REQUIRE(windows.size() >= 4);
    for (const auto& w : windows) {
      CHECK(w.input_ids.size() <= 10);
      CHECK(w.input_ids.front() == 2);
      CHECK(w.input_ids.back() == 3);
      CHECK(w.labels.front() == kIgnoreIndex);
    }
    // First piece only: exactly one label per word in the un-windowed sequence.
    const auto single = ner_features(s, 0, tok, labels, NerFeatureOptions{512, 0, pieces});
    REQUIRE(single.size() == 1);
    const auto n_labelled = std::count_if(single[0].labels.begin(), single[0].labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
    if (pieces == LabelPieces::First) {
      CHECK(n_labelled == static_cast<int64_t>(s.words.size()));
    } else {
      CHECK(n_labelled == static_cast<int64_t>(single[0].input_ids.size()) - 2);
      // "hereditary" = her|edi|tar|y: B-Disease then I-Disease on its continuation pieces.
      CHECK(single[0].labels[12] == labels.id("B-Disease"));
      CHECK(single[0].labels[13] == labels.id("I-Disease"));
    }
    // A perfect model: each token predicts its word's label (continuations get I-).
    std::vector<std::vector<int64_t>> preds;
    for (const auto& w : windows) {
      std::vector<int64_t> p;
      int64_t prev = -1;
      for (auto wid : w.word_ids) {
        int64_t lab = wid < 0 ? 0 : labels.id(s.tags[static_cast<size_t>(wid)]);
        if (wid >= 0 && wid == prev && labels.name(lab).rfind("B-", 0) == 0) lab = labels.id("I-" + labels.name(lab).substr(2));
        p.push_back(lab);
        prev = wid;
      }
      preds.push_back(p);
    }
    const auto words = ner_word_predictions(windows, preds, static_cast<int64_t>(s.words.size()));
    std::vector<std::string> tags;
    for (auto id : words) tags.push_back(labels.name(id));
    CHECK(tags == s.tags);
    CHECK(tags_to_spans(tags) == gold);
  }
}

TEST_CASE("windows, merging and span -> token mapping", "[data][align]") {
  CHECK(make_windows(5, 8, 2).size() == 1);
  const auto w = make_windows(10, 6, 2);
  REQUIRE(w.size() == 2);
  CHECK((w[0].begin == 0 && w[0].end == 6 && w[1].begin == 4 && w[1].end == 10));
  const auto merged = merge_windows(w, {std::vector<int64_t>(6, 1), std::vector<int64_t>(6, 2)}, 10);
  // token 4: 1 token of context in window 0 (right side), 0 in window 1 -> window 0; token 5 -> window 1.
  CHECK(merged == std::vector<int64_t>{1, 1, 1, 1, 1, 2, 2, 2, 2, 2});
  const std::vector<std::pair<int64_t, int64_t>> offs = {{0, 0}, {0, 3}, {3, 5}, {6, 9}, {0, 0}};
  CHECK(span_to_tokens(offs, 4, 8) == std::make_pair<int64_t, int64_t>(2, 3));
  CHECK(!span_to_tokens(offs, 5, 6).has_value());
  test::PieceTokenizer tok;
  SpanQaExample ex;
  ex.question = "How often?";
  ex.context = "Take the tablet twice daily with water";
  ex.answers = {{"twice daily", 16}};
  const auto fs = span_qa_features(ex, 0, tok, 14, 2);  // 7 context tokens per window
  REQUIRE(fs.size() >= 2);
  int found = 0;
  for (const auto& f : fs) {
    INFO("window at " << f.window_begin << " start " << f.start_position << " end " << f.end_position << " n " << f.input_ids.size());
    CHECK(f.input_ids.size() <= 14);
    if (f.start_position > 0) {
      ++found;
      CHECK(f.offsets[static_cast<size_t>(f.start_position)].first == 16);
      CHECK(f.offsets[static_cast<size_t>(f.end_position)].second == 27);
    }
  }
  CHECK(found >= 1);
}

TEST_CASE("MLM masking: 15 % chosen, 80/10/10, specials never masked, whole words", "[data][mlm]") {
  MlmOptions o;
  o.mask_id = 4;
  o.vocab_size = 9005;
  o.never_mask = {0, 1, 2, 3, 4};
  std::mt19937_64 rng(1234);
  int64_t maskable = 0, chosen = 0, to_mask = 0, to_random = 0, kept = 0;
  for (int row = 0; row < 200; ++row) {
    std::vector<int64_t> ids = {2};
    for (int t = 0; t < 254; ++t) ids.push_back(5 + static_cast<int64_t>(rng() % 9000));
    ids.push_back(3);
    const auto orig = ids;
    std::vector<int64_t> labels;
    apply_mlm(ids, labels, {}, o, rng);
    CHECK(ids.front() == 2);
    CHECK(ids.back() == 3);
    CHECK(labels.front() == kIgnoreIndex);
    CHECK(labels.back() == kIgnoreIndex);
    for (size_t t = 1; t + 1 < ids.size(); ++t) {
      ++maskable;
      if (labels[t] == kIgnoreIndex) {
        REQUIRE(ids[t] == orig[t]);
        continue;
      }
      REQUIRE(labels[t] == orig[t]);
      ++chosen;
      if (ids[t] == 4) ++to_mask;
      else if (ids[t] == orig[t]) ++kept;
      else {
        ++to_random;
        REQUIRE(ids[t] >= 5);
      }
    }
  }
  // 50,800 maskable tokens: sd of the chosen share ~0.0016, of the 80 % share ~0.005.
  const double p = static_cast<double>(chosen) / maskable;
  CHECK(std::abs(p - 0.15) < 0.007);
  CHECK(std::abs(static_cast<double>(to_mask) / chosen - 0.8) < 0.02);
  CHECK(std::abs(static_cast<double>(to_random) / chosen - 0.1) < 0.015);
  CHECK(std::abs(static_cast<double>(kept) / chosen - 0.1) < 0.015);

  // Whole-word masking: words of 3 pieces are masked all or nothing.
  o.whole_word = true;
  int64_t words = 0, words_chosen = 0;
  for (int row = 0; row < 100; ++row) {
    std::vector<int64_t> ids = {2};
    std::vector<uint8_t> starts = {1};
    for (int t = 0; t < 300; ++t) {
      ids.push_back(5 + t);
      starts.push_back(t % 3 == 0);
    }
    ids.push_back(3);
    starts.push_back(1);
    std::vector<int64_t> labels;
    apply_mlm(ids, labels, starts, o, rng);
    for (int wd = 0; wd < 100; ++wd) {
      const int n = (labels[1 + 3 * wd] != kIgnoreIndex) + (labels[2 + 3 * wd] != kIgnoreIndex) + (labels[3 + 3 * wd] != kIgnoreIndex);
      REQUIRE((n == 0 || n == 3));
      ++words;
      words_chosen += n == 3;
    }
  }
  CHECK(std::abs(static_cast<double>(words_chosen) / words - 0.15) < 0.015);  // 10,000 words, sd 0.0036
}

namespace {
// A shard whose token at stream position p is 100 * (shard + 1) + p % 100 ... documents of the given sizes.
std::shared_ptr<TokenShard> make_shard(int64_t index, const std::vector<int64_t>& doc_sizes) {
  auto s = std::make_shared<TokenShard>();
  s->meta.shard_index = index;
  s->meta.vocab_size = 100000;
  s->doc_offsets = {0};
  for (auto n : doc_sizes) {
    for (int64_t i = 0; i < n; ++i) s->tokens.push_back(static_cast<int32_t>(10000 * (index + 1) + s->tokens.size()));
    s->doc_offsets.push_back(static_cast<int64_t>(s->tokens.size()));
  }
  s->meta.n_tokens = static_cast<int64_t>(s->tokens.size());
  s->meta.n_documents = static_cast<int64_t>(doc_sizes.size());
  return s;
}
}  // namespace

TEST_CASE("packing cuts each shard's stream into sequences and never crosses a shard end", "[data][packing]") {
  const auto a = make_shard(0, {3, 4, 6});  // 13 tokens
  const auto b = make_shard(1, {2, 5});     // 7 tokens
  for (bool drop : {false, true}) {
    PackOptions o;
    o.seq_len = 5;
    o.drop_remainder = drop;
    const auto ds = PackedDataset::from_shards({a, b}, o);
    CHECK(ds->size() == (drop ? 2 + 1 : 3 + 2));
    for (int64_t i = 0; i < ds->size(); ++i) {
      const auto f = ds->get(i);
      const auto& r = ds->ref(i);
      const auto& sh = r.shard == 0 ? *a : *b;
      REQUIRE(r.end <= static_cast<int64_t>(sh.tokens.size()));
      for (size_t t = 0; t < f.input_ids.size(); ++t) {
        CHECK(f.input_ids[t] / 10000 == r.shard + 1);  // every token from this sequence's shard
        CHECK(f.input_ids[t] % 10000 == r.begin + static_cast<int64_t>(t));
      }
    }
  }
  PackOptions o;
  o.seq_len = 5;
  const auto ds = PackedDataset::from_shards({a, b}, o);
  CHECK(ds->get(0).segment_ids == std::vector<int64_t>{0, 0, 0, 1, 1});  // docs [0,3) [3,7)
  CHECK(ds->get(1).segment_ids == std::vector<int64_t>{0, 0, 1, 1, 1});  // tokens 5..9: doc 1 then doc 2
  CHECK(ds->get(2).segment_ids == std::vector<int64_t>{0, 0, 0});        // shard a's tail, 3 tokens
  CHECK(ds->get(3).segment_ids == std::vector<int64_t>{0, 0, 1, 1, 1});  // shard b starts afresh
  // CLM: no target on the first token of a later document; positions restart per document.
  auto batch = collate_clm({ds->get(1), ds->get(2)}, {});
  CHECK(batch.at("input_ids").sizes() == torch::IntArrayRef({2, 5}));
  const auto lab = batch.at("labels");
  CHECK(lab[0][0].item<int64_t>() == 10005);
  CHECK(lab[0][2].item<int64_t>() == kIgnoreIndex);
  CHECK(lab[1][3].item<int64_t>() == kIgnoreIndex);  // padding
  CHECK(batch.at("position_ids")[0][3].item<int64_t>() == 1);
  CHECK(batch.at("segment_ids")[1][4].item<int64_t>() == -1);
  CHECK(batch.n_target_tokens == 4 + 3);
}

TEST_CASE("collate pads dynamically and emits the documented tensors", "[data][collate]") {
  test::PieceTokenizer tok;
  auto a = pair_features("No fever.", "Afebrile patient.", tok, 64);
  a.label = 2;
  auto b = pair_features("Short", "", tok, 64);
  b.label = 0;
  auto batch = collate({a, b}, {0, 8});
  const auto T = static_cast<int64_t>(a.input_ids.size());
  CHECK(batch.at("input_ids").size(1) == (T + 7) / 8 * 8);
  CHECK(batch.at("attention_mask").sum().item<int64_t>() == T + static_cast<int64_t>(b.input_ids.size()));
  CHECK(batch.at("token_type_ids")[0].sum().item<int64_t>() == std::count(a.token_type_ids.begin(), a.token_type_ids.end(), 1));
  CHECK(batch.at("labels").sizes() == torch::IntArrayRef({2}));
  CHECK(batch.n_target_tokens == 2);
  ChoiceExample ex;
  ex.question = "Which?";
  ex.options = {"alpha", "beta gamma", "d", "e"};
  ex.answer = 1;
  const auto mc = collate({choice_features(ex, tok, 32), choice_features(ex, tok, 32)});
  CHECK(mc.at("choice_ids").sizes() == torch::IntArrayRef({2, 4, mc.at("choice_ids").size(2)}));
  CHECK(mc.at("labels")[1].item<int64_t>() == 1);
  Features s;
  s.input_ids = {2, 7, 3};
  s.has_score = true;
  s.score = 3.5;
  const auto sts = collate({s});
  CHECK(sts.at("scores")[0].item<float>() == 3.5f);
  InstructionExample ins;
  ins.turns = {{"user", "Hi"}, {"assistant", "Hello there"}};
  const auto f = instruction_features(ins, tok, 128);
  const auto n_learn = std::count_if(f.labels.begin(), f.labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
  CHECK(n_learn == static_cast<int64_t>(tok.encode("Hello there\n", false).ids.size()));
}

namespace {
std::shared_ptr<VectorDataset> counting_dataset(int64_t n) {
  std::vector<Features> rows;
  for (int64_t i = 0; i < n; ++i) {
    Features f;
    f.input_ids = {i + 10};
    for (int64_t k = 0; k < i % 5; ++k) f.input_ids.push_back(100 + k);
    rows.push_back(f);
  }
  return std::make_shared<VectorDataset>(rows);
}
Collator mlm_collator() {
  MlmOptions m;
  m.mask_id = 4;
  m.vocab_size = 1000;
  m.never_mask = {0, 4};
  m.mask_prob = 0.5;
  return [m](std::vector<Features>&& rows, uint64_t seed) {
    auto b = collate_mlm(rows, {}, m, seed);
    // keep the row ids visible: the first labels/inputs are masked randomly, so record them
    auto ids = torch::empty({static_cast<int64_t>(rows.size())}, torch::kInt64);
    for (size_t i = 0; i < rows.size(); ++i) ids[static_cast<int64_t>(i)] = rows[i].input_ids[0];
    b["row"] = ids;
    return b;
  };
}
void require_same(const Batch& a, const Batch& b) {
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [k, v] : a.tensors) {
    INFO(k);
    REQUIRE(v.sizes() == b.at(k).sizes());
    REQUIRE(v.equal(b.at(k)));
  }
}
}  // namespace

TEST_CASE("loader: a resumed run sees exactly the batches of an unbroken one", "[data][loader]") {
  const auto ds = counting_dataset(23);
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 7;
  std::vector<Batch> unbroken;
  {
    Loader l(ds, mlm_collator(), o);
    for (int e = 0; e < 2; ++e) {
      l.start_epoch(e);
      while (auto b = l.next()) unbroken.push_back(*b);
    }
  }
  REQUIRE(unbroken.size() == 12);
  CHECK(!unbroken[0].at("row").equal(unbroken[6].at("row").narrow(0, 0, unbroken[0].at("row").size(0))));  // epochs differ
  nlohmann::json saved;
  {
    Loader l(ds, mlm_collator(), o);
    l.start_epoch(1);
    for (int k = 0; k < 2; ++k) l.next();
    saved = l.state();
  }
  CHECK(saved["epoch"] == 1);
  CHECK(saved["batch"] == 2);
  Loader resumed(ds, mlm_collator(), o);
  resumed.restore(saved);
  for (size_t k = 8; k < 12; ++k) {
    auto b = resumed.next();
    REQUIRE(b.has_value());
    require_same(*b, unbroken[k]);
  }
  CHECK(!resumed.next().has_value());
  // Without a prefetch thread: the same batches.
  auto o0 = o;
  o0.prefetch = 0;
  Loader sync(ds, mlm_collator(), o0);
  for (size_t k = 0; k < 6; ++k) require_same(*sync.next(), unbroken[k]);
  // A state from another setup is refused.
  auto other = o;
  other.seed = 8;
  Loader wrong(ds, mlm_collator(), other);
  CHECK_THROWS_AS(wrong.restore(saved), biolm::ConfigError);
}

TEST_CASE("loader: two ranks together see every sample exactly once per epoch, slicing the global batches",
          "[data][loader]") {
  const auto ds = counting_dataset(23);
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::multiset<int64_t> seen;
    for (int64_t rank = 0; rank < 2; ++rank) {
      LoaderOptions o;
      o.batch_size = 3;
      o.seed = 11;
      o.rank = rank;
      o.world_size = 2;
      Loader l(ds, [](std::vector<Features>&& rows, uint64_t) { return collate(rows); }, o);
      l.start_epoch(epoch);
      CHECK(*l.batches_per_epoch() == 8);  // the 8 global batches of 3 (the last of 2): each rank a slice
      Loader whole(ds, [](std::vector<Features>&& rows, uint64_t) { return collate(rows); }, [&] {
        auto w = o;
        w.rank = 0;
        w.world_size = 1;
        return w;
      }());
      whole.start_epoch(epoch);
      const auto all = whole.epoch_indices(epoch), mine = l.epoch_indices(epoch);
      for (int64_t k = 0, pos = 0; k < 8; ++k) {  // global batch k = positions [3k, 3k+n); rank 0: 1st row
        const int64_t n = std::min<int64_t>(3, 23 - 3 * k), lo = rank * n / 2, hi = (rank + 1) * n / 2;
        for (int64_t i = lo; i < hi; ++i) CHECK(mine.at(static_cast<size_t>(pos++)) == all.at(static_cast<size_t>(3 * k + i)));
      }
      while (auto b = l.next()) {
        const auto ids = b->at("input_ids");
        for (int64_t i = 0; i < ids.size(0); ++i) seen.insert(ids[i][0].item<int64_t>() - 10);
        // dynamic padding: the batch is as long as its longest row
        int64_t longest = 0;
        for (int64_t i = 0; i < ids.size(0); ++i) longest = std::max(longest, (ids[i][0].item<int64_t>() - 10) % 5 + 1);
        CHECK(ids.size(1) == longest);
      }
    }
    REQUIRE(seen.size() == 23);
    for (int64_t i = 0; i < 23; ++i) CHECK(seen.count(i) == 1);
  }
}

TEST_CASE("parallel sharding: identical shards for 1 and 3 workers, documents never split", "[data][shards]") {
  test::PieceTokenizer tok;
  std::vector<std::string> docs;
  for (int i = 0; i < 300; ++i) {
    std::string d;
    for (int w = 0; w < 3 + i % 17; ++w) d += "word" + std::to_string((i * 31 + w * 7) % 101) + " ";
    docs.push_back(d);
  }
  docs[5] = "";  // only [CLS] [SEP]: 2 tokens, below min_tokens 3
  const auto run = [&](int64_t workers) {
    ShardingOptions o;
    o.n_workers = workers;
    o.docs_per_task = 7;
    o.tokens_per_shard = 1000;
    o.min_tokens = 3;
    o.word_starts = true;
    size_t i = 0;
    std::vector<TokenShard> shards;
    const auto rep = tokenize_to_shards(
        [&](TextRecord& r) {
          if (i >= docs.size()) return false;
          r.text = docs[i];
          r.id = std::to_string(i++);
          return true;
        },
        tok, o, [&](TokenShard&& s) { shards.push_back(std::move(s)); });
    return std::make_pair(rep, shards);
  };
  const auto [r1, s1] = run(1);
  const auto [r3, s3] = run(3);
  CHECK(r1.n_documents == 299);
  CHECK(r1.n_too_short == 1);
  CHECK(r1.n_shards == static_cast<int64_t>(s1.size()));
  REQUIRE(s1.size() > 3);
  REQUIRE(s1.size() == s3.size());
  int64_t total = 0, doc = 0;
  for (size_t k = 0; k < s1.size(); ++k) {
    CHECK(s1[k].tokens == s3[k].tokens);
    CHECK(s1[k].doc_offsets == s3[k].doc_offsets);
    CHECK(s1[k].word_starts == s3[k].word_starts);
    CHECK(s1[k].meta.n_tokens <= 1000);
    s1[k].validate("mem");
    total += s1[k].meta.n_tokens;
    // Each document is exactly encode(text) of the next kept input.
    for (int64_t d = 0; d < s1[k].meta.n_documents; ++d, ++doc) {
      if (doc == 5) ++doc;
      const auto want = tok.encode(docs[static_cast<size_t>(doc)]).ids;
      const std::vector<int64_t> got(s1[k].tokens.begin() + s1[k].doc_offsets[d], s1[k].tokens.begin() + s1[k].doc_offsets[d + 1]);
      REQUIRE(got == want);
    }
  }
  CHECK(total == r1.n_tokens);
  CHECK(s1[0].meta.tokenizer_fingerprint == "test-pieces-3");
}
