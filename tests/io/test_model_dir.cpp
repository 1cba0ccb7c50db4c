// Tests of the biolm model directory (io/model_dir.h): save -> load gives identical outputs for
// plain, LoRA and merged models; a pretrained body loads into a new head non-strictly; strict
// mode, shape mismatches and malformed model.json are refused with the file named.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "biolm/core/error.h"
#include "biolm/io/model_dir.h"
#include "biolm/io/safetensors.h"
#include "biolm/tokenize/wordpiece.h"
#include "support/test_util.h"

using namespace biolm;
using namespace biolm::test;
namespace fs = std::filesystem;

namespace {

models::ModelConfig tiny_encoder() {
  auto c = models::preset("tiny-encoder");
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.ffn_size = 32;
  c.max_positions = 32;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  return c;
}

data::Batch batch_of(int64_t vocab) {
  data::Batch b;
  torch::manual_seed(3);
  b.tensors["input_ids"] = torch::randint(5, vocab, {2, 7}, torch::kLong);
  b.tensors["attention_mask"] = torch::ones({2, 7}, torch::kLong);
  return b;
}

torch::Tensor logits_of(models::TaskModelImpl& m, const data::Batch& b) {
  torch::NoGradGuard ng;
  m.eval();
  return m.run(b).logits;
}

}  // namespace

TEST_CASE("model directory: save -> load reproduces outputs, config, labels and tokenizer", "[io][model_dir]") {
  TempDir tmp;
  const auto cfg = tiny_encoder();
  torch::manual_seed(1);
  auto model = models::make_task_model(cfg, models::TaskKind::TokenClassification, 3);
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "fever", "cough", "##s"};
  tokenize::WordPieceTokenizer tok(vocab);
  io::ModelDirInfo info;
  info.config = cfg;
  info.task = models::TaskKind::TokenClassification;
  info.n_labels = 3;
  info.labels = {"O", "B-Disease", "I-Disease"};
  info.info = {{"steps", 12}};
  io::ModelDirSaveOptions so;
  so.tokenizer = &tok;
  io::save_model_dir(*model, info, tmp.path() / "m", so);
  REQUIRE(io::is_model_dir(tmp.path() / "m"));
  REQUIRE_FALSE(io::is_model_dir(tmp.path()));

  auto loaded = io::load_model_dir(tmp.path() / "m");
  CHECK(loaded.info.labels == info.labels);
  CHECK(loaded.info.info["steps"] == 12);
  CHECK(loaded.info.config.hidden_size == 16);
  REQUIRE(loaded.tokenizer);
  CHECK(loaded.tokenizer->vocab_size() == static_cast<int64_t>(vocab.size()));
  const auto b = batch_of(cfg.vocab_size);
  CHECK(torch::equal(logits_of(*model, b), logits_of(*loaded.model, b)));
}

TEST_CASE("model directory: LoRA weights reload with their method, merged saves are plain models", "[io][model_dir]") {
  TempDir tmp;
  const auto cfg = tiny_encoder();
  torch::manual_seed(2);
  auto model = models::make_task_model(cfg, models::TaskKind::SequenceClassification, 2);
  peft::MethodConfig lora;
  lora.method = peft::Method::Lora;
  lora.lora.rank(2).targets({"**.q_proj", "**.v_proj"});
  peft::apply(*model, lora);
  {
    torch::NoGradGuard ng;  // B = 0 at init: make the adapter matter
    for (auto& p : model->named_parameters())
      if (p.key().find(".adapter.") != std::string::npos) p.value().normal_(0, 0.3);
  }
  const auto b = batch_of(cfg.vocab_size);
  const auto want = logits_of(*model, b);

  io::ModelDirInfo info;
  info.config = cfg;
  info.task = models::TaskKind::SequenceClassification;
  info.n_labels = 2;
  // Adapters present but no method recorded: refused (the directory could not be loaded).
  CHECK_THROWS_WITH(io::save_model_dir(*model, info, tmp.path() / "bad"), Catch::Contains("peft is unset"));

  info.peft = lora;
  io::save_model_dir(*model, info, tmp.path() / "lora");
  auto with_adapter = io::load_model_dir(tmp.path() / "lora");
  REQUIRE(with_adapter.info.peft);
  CHECK(torch::equal(want, logits_of(*with_adapter.model, b)));

  io::ModelDirSaveOptions merge;
  merge.merge_adapters = true;
  io::save_model_dir(*model, info, tmp.path() / "merged", merge);
  auto merged = io::load_model_dir(tmp.path() / "merged");
  CHECK_FALSE(merged.info.peft);
  BIOLM_REQUIRE_CLOSE(logits_of(*merged.model, b), want, 1e-5);
  // The source model was unmerged again after saving (merge + unmerge round-off only).
  BIOLM_REQUIRE_CLOSE(logits_of(*model, b), want, 1e-6);
}

TEST_CASE("model directory: a pretrained body loads into a new head, strictness and shapes are checked", "[io][model_dir]") {
  TempDir tmp;
  const auto cfg = tiny_encoder();
  torch::manual_seed(4);
  auto mlm = models::make_task_model(cfg, models::TaskKind::MaskedLM);
  io::ModelDirInfo info;
  info.config = cfg;
  info.task = models::TaskKind::MaskedLM;
  io::save_model_dir(*mlm, info, tmp.path() / "pre");

  auto ner = models::make_task_model(cfg, models::TaskKind::TokenClassification, 5);
  const auto report = io::load_weights(*ner, tmp.path() / "pre", /*strict=*/false);
  CHECK(report.missing == std::vector<std::string>{"classifier.weight", "classifier.bias"});
  CHECK_FALSE(report.unexpected.empty());
  for (const auto& u : report.unexpected) CHECK((u.rfind("mlm_head.", 0) == 0 || u.rfind("lm_head.", 0) == 0));
  const auto ner_params = ner->named_parameters();
  for (const auto& p : mlm->named_parameters()) {
    if (ner_params.contains(p.key())) CHECK(torch::equal(p.value(), ner_params[p.key()]));
  }
  CHECK_THROWS_AS(io::load_weights(*ner, tmp.path() / "pre", /*strict=*/true), CheckpointError);

  auto wider = cfg;
  wider.hidden_size = 32;
  wider.ffn_size = 64;
  auto other = models::make_task_model(wider, models::TaskKind::MaskedLM);
  CHECK_THROWS_WITH(io::load_weights(*other, tmp.path() / "pre", false), Catch::Contains("shape"));

  write_text(tmp.path() / "pre" / "model.json", R"({"format": "biolm-model", "version": 1, "task": "masked_lm"})");
  CHECK_THROWS_WITH(io::load_model_dir(tmp.path() / "pre"), Catch::Contains("model.json") && Catch::Contains("config"));
  write_text(tmp.path() / "pre" / "model.json", R"({"format": "something-else"})");
  CHECK_THROWS_WITH(io::read_model_dir_info(tmp.path() / "pre"), Catch::Contains("format"));
  CHECK_THROWS_AS(io::load_model_dir(tmp.path() / "nowhere"), CheckpointError);
}

// ---- io/files.h: the one atomic write ----------------------------------------------------------

#include "biolm/io/files.h"

TEST_CASE("io::write_file_atomic replaces a file whole and leaves no temporary behind", "[io][files]") {
  test::TempDir tmp("files");
  const auto path = tmp / "sub" / "out.json";  // the directory is created
  io::write_file_atomic(path, "{\"a\": 1}\n");
  CHECK(test::read_text(path) == "{\"a\": 1}\n");
  io::write_file_atomic(path, "{\"a\": 2}\n");
  CHECK(io::read_json_file(path) == nlohmann::json{{"a", 2}});
  // A producer that fails half-way leaves the previous file as it was, and no temp file.
  CHECK_THROWS_AS(io::write_file_atomic_stream(path,
                                               [](const auto& sink) {
                                                 sink("{\"a\": 3", 7);
                                                 throw IoError("x", "producer failed");
                                               }),
                  IoError);
  CHECK(test::read_text(path) == "{\"a\": 2}\n");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path())) entries += e.is_regular_file();
  CHECK(entries == 1);
  io::fsync_path(path);
  CHECK_THROWS_AS(io::fsync_path(tmp / "absent"), IoError);
  test::write_text(tmp / "bad.json", "{\n  \"a\": ,\n}\n");
  CHECK_THROWS_WITH(io::read_json_file(tmp / "bad.json"), Catch::Contains("bad.json:2"));
}
