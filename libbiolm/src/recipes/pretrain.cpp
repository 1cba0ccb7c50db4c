// The pretraining recipe (see biolm/recipes/pretrain.h), moved out of tools/biolm/cmd_pretrain.cpp.
#include "biolm/recipes/pretrain.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "biolm/config.h"
#include "biolm/core/config.h"
#include "biolm/core/device.h"
#include "biolm/core/log.h"
#include "biolm/core/seed.h"
#include "biolm/data/loader.h"
#include "biolm/data/shards.h"
#include "biolm/io/init_source.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/tokenize/sentencepiece.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/distributed.h"

namespace biolm::recipes {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using core::check_range;

/// Rows [indices] of another dataset (the train / validation split of the packed sequences).
class SubsetDataset : public data::Dataset {
 public:
  SubsetDataset(std::shared_ptr<const data::Dataset> base, std::vector<int64_t> indices)
      : base_(std::move(base)), indices_(std::move(indices)) {}
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  data::Features get(int64_t i) const override { return base_->get(indices_.at(static_cast<size_t>(i))); }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::vector<int64_t> indices_;
};

/// Counts the real (non-padding) input tokens of the batches the trainer draws.
class CountingSource : public data::BatchSource {
 public:
  explicit CountingSource(data::BatchSource& inner) : inner_(inner) {}
  std::optional<data::Batch> next() override {
    auto b = inner_.next();
    if (b && b->has("attention_mask")) tokens += b->at("attention_mask").sum().item<int64_t>();
    return b;
  }
  void start_epoch(int64_t epoch) override { inner_.start_epoch(epoch); }
  json state() const override { return inner_.state(); }
  void restore(const json& state) override { inner_.restore(state); }
  std::optional<int64_t> batches_per_epoch() const override { return inner_.batches_per_epoch(); }
  bool global_position() const override { return inner_.global_position(); }
  int64_t tokens = 0;

 private:
  data::BatchSource& inner_;
};

/// Trains the tokenizer on `corpus_file` (one document per line) into dir and loads it back.
std::shared_ptr<tokenize::Tokenizer> train_tokenizer(const TokenizerTrainConfig& t, const fs::path& corpus_file,
                                                     const fs::path& dir, bool mlm) {
  fs::create_directories(dir);
  if (t.kind == "wordpiece") {
    tokenize::WordPieceTrainOptions wo;
    wo.vocab_size = t.vocab_size;
    wo.lowercase = t.lowercase;
    tokenize::train_wordpiece({corpus_file}, wo, dir / "vocab.txt");
    // Loaded with the casing it was trained with (a bare vocab.txt means BERT's lower-casing),
    // and saved with its tokenizer_config.json (do_lower_case) so every later load agrees.
    tokenize::LoadOptions lo;
    lo.lowercase = t.lowercase;
    std::shared_ptr<tokenize::Tokenizer> tok = tokenize::load_tokenizer(dir / "vocab.txt", lo);
    tok->save(dir);
    return tokenize::load_tokenizer(dir);
  }
#if BIOLM_HAS_SENTENCEPIECE
  tokenize::SentencePieceTrainOptions so;
  so.vocab_size = t.vocab_size;
  so.model_type = t.kind == "sentencepiece-bpe" ? tokenize::SentencePieceModelType::Bpe
                                                : tokenize::SentencePieceModelType::Unigram;
  so.byte_fallback = true;
  // SentencePiece models have no padding or mask piece by default; MLM needs both.
  so.user_defined_symbols = {"<pad>"};
  if (mlm) so.user_defined_symbols.push_back("[MASK]");
  const auto model = tokenize::train_sentencepiece({corpus_file}, so, dir / "sp");
  tokenize::SentencePieceOptions opts;
  opts.add_bos = true;
  opts.add_eos = true;  // documents end with </s>: a causal LM learns where text stops
  opts.specials.pad = "<pad>";
  if (mlm) opts.specials.mask = "[MASK]";
  auto sp = tokenize::SentencePieceTokenizer::from_file(model, opts);
  sp->save(dir);
  fs::remove(model);
  fs::remove(dir / "sp.vocab");
  return tokenize::load_tokenizer(dir);
#else
  (void)corpus_file;
  (void)mlm;
  throw ConfigError("tokenizer.train.kind", "this biolm was built without SentencePiece; use kind: wordpiece");
#endif
}

struct EvalResult {
  double loss = std::numeric_limits<double>::quiet_NaN();
  int64_t targets = 0;
};

}  // namespace

PretrainConfig pretrain_config_from_json(const json& tree) {
  PretrainConfig c;
  c.tree = tree;
  // Every section is read and checked here, before any corpus is read, vocabulary trained or
  // model built; every problem (unknown key, wrong type, bad value) is collected with its key
  // path and r.finish() throws them all in one ConfigError.
  core::ConfigReader r(tree);
  const auto range = [&r](bool ok, const std::string& key, const std::string& what, const std::string& got) {
    r.check(ok, key, "must be " + what + ", got " + got);
  };
  c.mlm = r.choice("objective", {"mlm", "clm"}, "mlm") == "mlm";
  c.seed = static_cast<uint64_t>(r.get<int64_t>("seed", 13));
  c.output = r.get<std::string>("output", "runs/pretrain");
  c.device = r.get<std::string>("device", "cpu");
  c.seq_len = r.get<int64_t>("seq_len", 128);
  range(c.seq_len >= 8, "seq_len", ">= 8", std::to_string(c.seq_len));
  c.threads = r.get<int64_t>("threads", 0);
  range(c.threads >= 0, "threads", ">= 0 (0 = all cores)", std::to_string(c.threads));
  c.shards = r.optional<std::string>("shards");

  auto& cr = r.child("corpus");
  const auto corpus_format = cr.optional<std::string>("format");
  c.corpus_paths = cr.get<std::vector<std::string>>("paths", {});
  c.corpus_options.jsonl.text_field = cr.get<std::string>("text_field", "text");
  c.corpus_options.require_abstract = cr.get<bool>("require_abstract", false);
  r.check(c.shards.has_value() != !c.corpus_paths.empty(), "corpus.paths",
          "give either corpus.paths (with corpus.format) or shards (a `biolm data prepare` directory), not both");
  if (!c.corpus_paths.empty()) {
    r.check(corpus_format.has_value(), "corpus.format", "required with corpus.paths");
    if (corpus_format) r.capture([&] { c.corpus_format = data::parse_corpus_format(*corpus_format); });
  }

  auto& tr = r.child("tokenizer");
  c.tokenizer_path = tr.optional<std::string>("path");
  if (tr.has("train")) {
    auto& tt = tr.child("train");
    TokenizerTrainConfig t;
    t.kind = tt.choice("kind", {"wordpiece", "sentencepiece-unigram", "sentencepiece-bpe"}, "wordpiece");
    t.vocab_size = tt.get<int64_t>("vocab_size", 8000);
    range(t.vocab_size > 10, "tokenizer.train.vocab_size", "> 10", std::to_string(t.vocab_size));
    t.lowercase = tt.get<bool>("lowercase", true);
    c.tokenizer_train = t;
  }
  r.check(!(c.tokenizer_train && c.shards), "tokenizer.train",
          "shards are tokenized already: give the tokenizer they were prepared with as tokenizer.path");

  auto& mr = r.child("mlm");
  auto& mo = c.mlm_options;
  mo.mask_prob = mr.get<double>("probability", 0.15);
  range(mo.mask_prob > 0 && mo.mask_prob < 1, "mlm.probability", "in (0, 1)", std::to_string(mo.mask_prob));
  mo.whole_word = mr.get<bool>("whole_word", false);
  auto& vr = r.child("validation");
  c.val_fraction = vr.get<double>("fraction", 0.05);
  range(c.val_fraction > 0 && c.val_fraction < 1, "validation.fraction", "in (0, 1)", std::to_string(c.val_fraction));
  c.val_max_sequences = vr.get<int64_t>("max_sequences", 256);
  range(c.val_max_sequences >= 1, "validation.max_sequences", ">= 1", std::to_string(c.val_max_sequences));

  if (r.raw("model")) c.model = *r.raw("model");
  if (r.raw("train")) c.train = *r.raw("train");
  c.batch_size = c.train.value("batch_size", 16);
  range(c.batch_size >= 1, "train.batch_size", ">= 1", std::to_string(c.batch_size));
  c.train.erase("batch_size");
  r.capture([&] { (void)train::train_config_from_json(c.train, "train"); });
  // The model section: a model.init directory's config with the given keys on top, or a preset.
  r.capture([&] {
    json mj = c.model;
    const auto init = io::take_init_source(mj, /*need_tokenizer=*/!c.tokenizer_path);
    r.check(!init || !c.tokenizer_train, "tokenizer.train",
            "model.init brings its vocabulary: continued pretraining keeps it (give tokenizer.path or nothing)");
    r.check(init || c.tokenizer_path.has_value() != c.tokenizer_train.has_value(), "tokenizer",
            "give exactly one of tokenizer.path and tokenizer.train");
    if (init) {
      json cj = models::to_json(init->config);
      for (const auto& [key, value] : mj.items()) cj[key] = value;
      mj = cj;
    } else if (!mj.contains("preset")) {
      mj["preset"] = c.mlm ? "tiny-encoder" : "tiny-decoder";
    }
    if (!mj.contains("max_positions")) mj["max_positions"] = std::max<int64_t>(512, c.seq_len);
    const auto mcfg = models::config_from_json(mj, "model");
    range(mcfg.positions != models::PositionKind::Learned || mcfg.max_positions >= c.seq_len, "model.max_positions",
          ">= seq_len", std::to_string(mcfg.max_positions));
    r.check(!mcfg.quantize, "model.quantize",
            "pretraining trains every weight; a quantized base is frozen (quantize for fine-tuning with adapters)");
  });
  r.finish();
  return c;
}

PretrainResult pretrain(const PretrainConfig& c, const PretrainHooks& hooks) {
  const bool mlm = c.mlm;
  const std::string objective = mlm ? "mlm" : "clm";
  const auto seed = c.seed;
  const fs::path out_dir = c.output;
  const int64_t seq_len = c.seq_len, batch_size = c.batch_size;
  const auto& tok_path = c.tokenizer_path;
  const auto& tok_train = c.tokenizer_train;
  const auto& shards_dir = c.shards;
  const auto& corpus_paths = c.corpus_paths;
  auto mo = c.mlm_options;

  json model_json = c.model;
  // Continued (domain-adaptive) pretraining: model.init names a biolm or Hugging Face directory;
  // its architecture, weights and vocabulary are kept (only dropout and checkpointing may change).
  const auto init = io::take_init_source(model_json, /*need_tokenizer=*/!tok_path);
  if (init) {
    BIOLM_CHECK(!tok_train, ConfigError, "tokenizer.train",
                "model.init brings its vocabulary: continued pretraining keeps it (give tokenizer.path or nothing)");
  }
  BIOLM_CHECK(init || tok_path.has_value() != tok_train.has_value(), ConfigError, "tokenizer",
              "give exactly one of tokenizer.path and tokenizer.train");
  auto tcfg = train::train_config_from_json(c.train, "train");

  core::seed_all(seed);
  fs::create_directories(out_dir);
  std::ofstream(out_dir / "config.yaml") << core::to_yaml(c.tree);
  // Corpus documents (in memory: use `biolm data prepare` + shards for corpora that do not fit).
  std::vector<data::TextRecord> docs;
  if (c.corpus_format) {
    data::ReadReport read;
    for (const auto& p : corpus_paths)
      read.merge(data::read_corpus(*c.corpus_format, p, [&](data::TextRecord&& rec) { docs.push_back(std::move(rec)); }, c.corpus_options));
    BIOLM_CHECK(!docs.empty(), DataError, corpus_paths.front(), 0, "text", "the corpus holds no documents");
    log::info("pretrain: {} documents from {} file(s)", docs.size(), corpus_paths.size());
  }

  // Tokenizer: given, trained on this corpus, or (resuming) the one trained by the first run.
  std::shared_ptr<tokenize::Tokenizer> tok;
  const fs::path tok_dir = out_dir / "tokenizer";
  if (tok_path) {
    tok = tokenize::load_tokenizer(*tok_path);
  } else if (init) {
    tok = tokenize::load_tokenizer(init->tokenizer_path);
    log::info("pretrain: the tokenizer of model.init ({} entries)", tok->vocab_size());
  } else if (tcfg.resume && fs::exists(tok_dir)) {
    log::info("pretrain: resuming, reusing the tokenizer in {}", tok_dir.string());
    tok = tokenize::load_tokenizer(tok_dir);
  } else {
    const fs::path corpus_file = out_dir / "tokenizer-corpus.txt";
    {
      std::ofstream f(corpus_file);
      for (const auto& d : docs) {
        std::string line = d.text;
        std::replace(line.begin(), line.end(), '\n', ' ');
        std::replace(line.begin(), line.end(), '\r', ' ');
        f << line << "\n";
      }
      if (!f) throw IoError(corpus_file.string(), "cannot write the tokenizer training text");
    }
    tok = train_tokenizer(*tok_train, corpus_file, tok_dir, mlm);
    fs::remove(corpus_file);
    log::info("pretrain: trained a {} tokenizer with {} entries into {}", tok_train->kind, tok->vocab_size(), tok_dir.string());
  }
  const auto& sp = tok->special();
  const int64_t pad_id = sp.pad.value_or(0);
  if (mlm) {
    BIOLM_CHECK(sp.mask.has_value(), ConfigError, "tokenizer", "masked-LM pretraining needs a tokenizer with a mask token");
    mo.mask_id = *sp.mask;
    mo.vocab_size = tok->vocab_size();
    for (const auto& s : {sp.pad, sp.unk, sp.bos, sp.eos, sp.cls, sp.sep, sp.mask})
      if (s) mo.never_mask.push_back(*s);
  }

  // Packed sequences.
  data::PackOptions po;
  po.seq_len = seq_len;
  std::shared_ptr<data::PackedDataset> packed;
  int64_t corpus_tokens = 0;
  if (shards_dir) {
#if BIOLM_HAS_HDF5
    packed = data::open_packed_dataset(*shards_dir, po, tok->fingerprint());
#else
    throw ConfigError("shards", "this biolm was built without HDF5; give corpus.paths instead");
#endif
  } else {
    data::ShardingOptions so;
    so.n_workers = c.threads;
    so.word_starts = mo.whole_word;
    std::vector<std::shared_ptr<const data::TokenShard>> shards;
    size_t next = 0;
    const auto rep = data::tokenize_to_shards(
        [&](data::TextRecord& rec) {
          if (next >= docs.size()) return false;
          rec = std::move(docs[next++]);
          return true;
        },
        *tok, so, [&](data::TokenShard&& s) { shards.push_back(std::make_shared<const data::TokenShard>(std::move(s))); });
    docs.clear();
    corpus_tokens = rep.n_tokens;
    log::info("pretrain: {} documents, {} tokens in {} shard(s)", rep.n_documents, rep.n_tokens, rep.n_shards);
    packed = data::PackedDataset::from_shards(std::move(shards), po);
  }
  const int64_t n_seq = packed->size();
  int64_t n_val = std::min<int64_t>(c.val_max_sequences, std::max<int64_t>(1, std::llround(c.val_fraction * static_cast<double>(n_seq))));
  BIOLM_CHECK(n_seq - n_val >= 1, DataError, shards_dir ? *shards_dir : corpus_paths.front(), 0, "text",
              fmt::format("{} packed sequences of {} tokens: too few for a training and a validation split", n_seq, seq_len));
  std::vector<int64_t> order(static_cast<size_t>(n_seq));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 split_rng(data::mix_seed(seed, 0x76616c));
  std::shuffle(order.begin(), order.end(), split_rng);
  std::vector<int64_t> val_idx(order.begin(), order.begin() + n_val), train_idx(order.begin() + n_val, order.end());
  std::sort(val_idx.begin(), val_idx.end());
  std::sort(train_idx.begin(), train_idx.end());
  auto train_set = std::make_shared<SubsetDataset>(packed, train_idx);
  auto val_set = std::make_shared<SubsetDataset>(packed, val_idx);
  log::info("pretrain: {} training and {} validation sequences of {} tokens", train_set->size(), val_set->size(), seq_len);

  // Model.
  json mj = model_json;
  if (init) {
    json cj = models::to_json(init->config);
    for (const auto& [key, value] : model_json.items()) cj[key] = value;
    mj = cj;
    BIOLM_CHECK(init->config.vocab_size == tok->vocab_size(), ConfigError, "tokenizer.path",
                "the tokenizer has " + std::to_string(tok->vocab_size()) + " tokens but model.init's vocab_size is " +
                    std::to_string(init->config.vocab_size));
  } else {
    if (!mj.contains("preset")) mj["preset"] = mlm ? "tiny-encoder" : "tiny-decoder";
    mj["vocab_size"] = tok->vocab_size();
    mj["pad_token_id"] = pad_id;
  }
  if (!mj.contains("max_positions")) mj["max_positions"] = std::max<int64_t>(512, seq_len);
  if (!mlm) {
    if (sp.bos) mj["bos_token_id"] = *sp.bos;
    if (sp.eos || sp.sep) mj["eos_token_id"] = sp.eos ? *sp.eos : *sp.sep;
  }
  const auto mcfg = models::config_from_json(mj, "model");
  check_range(mcfg.positions != models::PositionKind::Learned || mcfg.max_positions >= seq_len, "model.max_positions",
              ">= seq_len", std::to_string(mcfg.max_positions));
  const auto task = mlm ? models::TaskKind::MaskedLM : models::TaskKind::CausalLM;
  auto model = models::make_task_model(mcfg, task, 2);
  if (init) {
    const auto report = io::load_init_weights(*model, *init);
    log::info("pretrain: model.init {} ({}): {}", init->dir.string(), init->format(), report.summary);
  }
  const auto device = core::parse_device(c.device);
  model->to(device);

  data::CollateOptions co;
  co.pad_id = pad_id;
  const auto collate = [mlm, co, mo](std::vector<data::Features>&& rows, uint64_t s) {
    return mlm ? data::collate_mlm(std::move(rows), co, mo, s) : data::collate_clm(std::move(rows), co);
  };
  // Validation loss: the same sequences and (for MLM) the same masks at every evaluation.
  const auto evaluate = [&]() {
    torch::NoGradGuard ng;
    const bool was_training = model->is_training();
    model->eval();
    double sum = 0.0;
    int64_t n = 0;
    for (int64_t b = 0; b * batch_size < val_set->size(); ++b) {
      std::vector<data::Features> rows;
      for (int64_t i = b * batch_size; i < std::min(val_set->size(), (b + 1) * batch_size); ++i) rows.push_back(val_set->get(i));
      const auto out = model->run(collate(std::move(rows), data::mix_seed(seed ^ 0x5eedULL, static_cast<uint64_t>(b))).to(device));
      sum += out.loss_sum.to(torch::kCPU).item<double>();
      n += out.n_target_tokens;
    }
    model->train(was_training);
    EvalResult e;
    e.targets = n;
    if (n > 0) e.loss = sum / static_cast<double>(n);
    return e;
  };

  const EvalResult initial = evaluate();
  log::info("pretrain: initial validation loss {:.4f} over {} targets", initial.loss, initial.targets);

  tcfg.run_dir = out_dir.string();
  tcfg.device = device.str();
  tcfg.seed = seed;
  if (!tcfg.best_metric && tcfg.eval_every > 0) {
    tcfg.best_metric = "val_loss";
    tcfg.best_mode = train::MetricMode::Min;
  }
  // torchrun / biolm launch: WORLD_SIZE > 1 joins a process group (dist/zero.h).
  const auto group = train::ProcessGroup::join_from_env(
      device, std::chrono::milliseconds(static_cast<int64_t>(tcfg.dist_timeout_s * 1000)));
  data::LoaderOptions lo;
  lo.batch_size = batch_size;  // the global batch: each rank of a data-parallel run takes its slice
  lo.seed = seed;
  if (group) {
    lo.rank = group->rank();
    lo.world_size = group->world_size();
  }
  data::Loader loader(train_set, collate, lo);
  CountingSource counting(loader);
  train::Trainer trainer(*model, tcfg);
  trainer.set_process_group(group);
  trainer.set_run_info({{"objective", objective},
                        {"model", models::to_json(mcfg)},
                        {"seq_len", seq_len},
                        {"head", models::to_string(task)},  // for `biolm convert checkpoint`
                        {"n_labels", model->n_labels()}});
  trainer.set_eval([&](train::TrainableModel&, int64_t step) {
    const auto e = evaluate();
    const train::Metrics m{{"val_loss", e.loss}, {"val_ppl", std::exp(e.loss)}};
    if (hooks.eval) hooks.eval(step, m);
    return m;
  });
  if (hooks.progress) trainer.set_progress(hooks.progress);
  if (hooks.step) trainer.set_step_callback(hooks.step);
  const auto result = trainer.fit(counting);
  PretrainResult res;
  res.status = result.status;
  if (group && group->rank() != 0) return res;  // rank 0 evaluates, writes results and the model
  const EvalResult final_eval = evaluate();

  json& results = res.results;
  results["objective"] = objective;
  results["steps"] = result.step;
  results["tokens_seen"] = counting.tokens;
  if (corpus_tokens > 0) results["corpus_tokens"] = corpus_tokens;
  results["train_sequences"] = train_set->size();
  results["val_sequences"] = val_set->size();
  results["val_loss_initial"] = initial.loss;
  results["val_loss_final"] = final_eval.loss;
  results["val_ppl_initial"] = std::exp(initial.loss);
  results["val_ppl_final"] = std::exp(final_eval.loss);
  results["val_loss_decreased"] = final_eval.loss < initial.loss;
  results["model_dir"] = (out_dir / "model").string();

  io::ModelDirInfo info;
  info.config = mcfg;
  info.task = task;
  info.n_labels = 2;
  info.info = {{"command", "pretrain"}, {"objective", objective}, {"steps", result.step}, {"seq_len", seq_len},
               {"val_loss", final_eval.loss}, {"val_ppl", std::exp(final_eval.loss)}};
  io::ModelDirSaveOptions so;
  so.tokenizer = tok.get();
  res.model_dir = (out_dir / "model").string();
  io::save_model_dir(*model, info, res.model_dir, so);

  std::ofstream(out_dir / "results.json") << results.dump(2) << "\n";
  return res;
}

}  // namespace biolm::recipes
