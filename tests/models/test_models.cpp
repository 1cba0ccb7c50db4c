// Models: configuration, parameter counts, the invariants every transformer must keep (causality,
// padding, KV cache, packing), gradients against finite differences, memorisation, task-head
// losses with ignore-index, generation, and CUDA-vs-CPU agreement ([cuda]).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <set>

#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/models/config.h"
#include "biolm/models/generate.h"
#include "biolm/models/task_model.h"
#include "biolm/models/transformer.h"
#include "biolm/peft/lora.h"
#include "biolm/peft/method.h"
#include "support/test_util.h"

using namespace biolm;
using namespace biolm::models;
using nlohmann::json;

namespace {

ModelConfig tiny(Family family) {
  auto c = preset(family == Family::Encoder ? "tiny-encoder" : "tiny-decoder");
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  return c;
}

ModelConfig with_moe(ModelConfig c) {
  c.moe.n_experts = 3;
  c.moe.top_k = 2;
  c.moe.layers = {1};
  return c;
}

torch::Tensor random_ids(int64_t B, int64_t T, int64_t lo = 3, int64_t hi = 100) {
  return torch::randint(lo, hi, {B, T}, torch::kLong);
}

// Manual cross entropy over the positions whose label is not -100 (the heads' reference).
double manual_ce(const torch::Tensor& logits, const torch::Tensor& labels) {
  const auto lp = torch::log_softmax(logits.to(torch::kDouble).reshape({-1, logits.size(-1)}), -1);
  const auto y = labels.reshape({-1});
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < y.size(0); ++i) {
    const auto t = y[i].item<int64_t>();
    if (t == -100) continue;
    sum -= lp[i][t].item<double>();
    ++n;
  }
  return sum / static_cast<double>(n);
}

}  // namespace

// ---- configuration ---------------------------------------------------------------------------------

TEST_CASE("ModelConfig JSON round-trips and rejects unknown keys, wrong types and bad ranges", "[models][config]") {
  for (const auto& name : preset_names()) {
    const auto c = preset(name);
    const auto back = config_from_json(to_json(c));
    REQUIRE(to_json(back) == to_json(c));
  }
  auto j = to_json(preset("tiny-decoder"));
  SECTION("unknown key, named with its path") {
    j["moe"]["expertz"] = 3;
    try {
      config_from_json(j);
      FAIL("no error");
    } catch (const ConfigError& e) {
      REQUIRE(e.key() == "model.moe.expertz");
    }
  }
  SECTION("wrong type") {
    j["n_layers"] = "two";
    REQUIRE_THROWS_WITH(config_from_json(j), Catch::Contains("model.n_layers") && Catch::Contains("integer"));
  }
  SECTION("bad enum") {
    j["activation"] = "gelu";
    REQUIRE_THROWS_WITH(config_from_json(j), Catch::Contains("model.activation") && Catch::Contains("gelu_erf"));
  }
  SECTION("ranges") {
    j["n_kv_heads"] = 3;
    REQUIRE_THROWS_WITH(config_from_json(j), Catch::Contains("model.n_kv_heads"));
    j["n_kv_heads"] = 2;
    j["moe"]["n_experts"] = 2;
    j["moe"]["top_k"] = 3;
    REQUIRE_THROWS_WITH(config_from_json(j), Catch::Contains("model.moe.top_k"));
    j["moe"]["top_k"] = 1;
    j["moe"]["layers"] = {0, 5};
    REQUIRE_THROWS_WITH(config_from_json(j), Catch::Contains("model.moe.layers[1]"));
  }
  SECTION("a preset with overrides") {
    const auto c = config_from_json(json{{"preset", "gpt2"}, {"n_layers", 2}});
    REQUIRE(c.n_layers == 2);
    REQUIRE(c.activation == Activation::GeluTanh);
    REQUIRE(c.vocab_size == 50257);
  }
  REQUIRE_THROWS_AS(preset("bert-huge"), ConfigError);
  REQUIRE(parse_task_kind("span_qa") == TaskKind::SpanQA);
  REQUIRE_THROWS_AS(parse_task_kind("qa"), ConfigError);
}

TEST_CASE("preset parameter counts equal their closed forms, without allocating", "[models][count]") {
  // BERT-base with pooler (HF BertModel): 109,482,240; LLaMA-7B shapes with lm_head: 6,738,415,616;
  // GPT-2 small (tied): 124,439,808. Hand sums in docs/models.md.
  REQUIRE(count_parameters(preset("bert-base")).total == 109482240);
  REQUIRE(count_parameters(preset("llama-7b")).total == 6738415616);
  REQUIRE(count_parameters(preset("gpt2")).total == 124439808);
  REQUIRE(count_parameters(preset("megatron-bert-345m")).total == 355267584);
  REQUIRE(human_count(109482240) == "109.5M");
  REQUIRE(human_count(6738415616) == "6.74B");
  const auto d = describe(preset("llama-7b"));
  REQUIRE(d.at("parameters").get<int64_t>() == 6738415616);
  REQUIRE(d.at("trainable").get<int64_t>() == 6738415616);
  REQUIRE(d.at("config").at("n_kv_heads").get<int64_t>() == 32);
  REQUIRE(summary(preset("bert-base")).find("109482240") != std::string::npos);
}

TEST_CASE("closed-form counts equal allocated counts for tiny models of every task", "[models][count]") {
  const std::vector<TaskKind> enc_tasks{TaskKind::MaskedLM, TaskKind::TokenClassification, TaskKind::SequenceClassification,
                                        TaskKind::Regression, TaskKind::SpanQA, TaskKind::MultipleChoice};
  const std::vector<TaskKind> dec_tasks{TaskKind::CausalLM, TaskKind::TokenClassification, TaskKind::SequenceClassification,
                                        TaskKind::Regression, TaskKind::SpanQA, TaskKind::MultipleChoice};
  for (bool moe : {false, true}) {
    for (bool tie : {false, true}) {
      auto enc = tiny(Family::Encoder), dec = tiny(Family::Decoder);
      enc.tie_embeddings = dec.tie_embeddings = tie;
      if (moe) enc = with_moe(enc), dec = with_moe(dec);
      for (auto task : enc_tasks) {
        INFO("encoder " << to_string(task) << " moe " << moe << " tie " << tie);
        REQUIRE(count_module_parameters(*make_task_model(enc, task, 5)).total == count_parameters(enc, task, 5).total);
      }
      for (auto task : dec_tasks) {
        INFO("decoder " << to_string(task) << " moe " << moe << " tie " << tie);
        REQUIRE(count_module_parameters(*make_task_model(dec, task, 5)).total == count_parameters(dec, task, 5).total);
      }
    }
  }
  REQUIRE_THROWS_AS(make_task_model(tiny(Family::Decoder), TaskKind::MaskedLM), ConfigError);
  REQUIRE_THROWS_AS(make_task_model(tiny(Family::Encoder), TaskKind::CausalLM), ConfigError);
}

TEST_CASE("parameter names are the agreed checkpoint keys, tied heads share the embedding", "[models]") {
  auto m = make_task_model(with_moe(tiny(Family::Decoder)), TaskKind::CausalLM);
  std::set<std::string> names;
  for (const auto& p : m->named_parameters()) names.insert(p.key());
  for (const char* k : {"embeddings.tok.weight", "layers.0.attn.q_proj.weight", "layers.0.attn.k_proj.weight",
                        "layers.0.attn.v_proj.weight", "layers.0.attn.o_proj.weight", "layers.0.attn_norm.weight",
                        "layers.0.mlp.up.weight", "layers.0.mlp.gate.weight", "layers.0.mlp.down.weight",
                        "layers.0.mlp_norm.weight", "layers.1.moe.router.weight", "layers.1.moe.experts.2.gate.weight",
                        "final_norm.weight", "lm_head.weight"}) {
    INFO(k);
    REQUIRE(names.count(k) == 1);
  }
  auto enc = make_task_model(tiny(Family::Encoder), TaskKind::MaskedLM);
  std::set<std::string> enc_names;
  for (const auto& p : enc->named_parameters()) enc_names.insert(p.key());
  for (const char* k : {"embeddings.pos.weight", "embeddings.type.weight", "embeddings.norm.bias", "mlm_head.dense.weight",
                        "mlm_head.norm.weight", "lm_head.bias"}) {
    INFO(k);
    REQUIRE(enc_names.count(k) == 1);
  }
  REQUIRE(enc_names.count("lm_head.weight") == 0);  // tied: saved once, as embeddings.tok.weight
  auto& mlm = dynamic_cast<MaskedLMModelImpl&>(*enc);
  REQUIRE(mlm.lm_head->weight.data_ptr() == mlm.body().embeddings->tok->weight.data_ptr());
  auto cls = make_task_model(tiny(Family::Encoder), TaskKind::SequenceClassification, 3);
  REQUIRE(cls->named_parameters().contains("pooler.dense.weight"));
  REQUIRE(cls->named_parameters().contains("classifier.weight"));
}

// ---- invariants -------------------------------------------------------------------------------------

TEST_CASE("decoders do not leak the future: changing tokens after t leaves logits <= t unchanged", "[models][invariant]") {
  for (auto kind : {"llama", "gpt2", "moe"}) {
    DYNAMIC_SECTION(kind) {
      torch::manual_seed(11);
      auto c = tiny(Family::Decoder);
      if (std::string(kind) == "gpt2") {
        c = config_from_json(json{{"preset", "gpt2"}, {"vocab_size", 100}, {"hidden_size", 32}, {"n_layers", 2},
                                  {"n_heads", 4}, {"n_kv_heads", 4}, {"ffn_size", 64}, {"max_positions", 32},
                                  {"hidden_dropout", 0.0}, {"attention_dropout", 0.0}, {"bos_token_id", nullptr},
                                  {"eos_token_id", nullptr}});
      }
      if (std::string(kind) == "moe") c = with_moe(c);
      CausalLMModelImpl m(c);
      m.eval();
      const auto a = random_ids(2, 10);
      auto b = a.clone();
      const int64_t t = 4;
      b.narrow(1, t + 1, 10 - t - 1).copy_(random_ids(2, 10 - t - 1));
      ModelInputs ia, ib;
      ia.input_ids = a;
      ib.input_ids = b;
      const auto la = m.forward(ia).logits, lb = m.forward(ib).logits;
      BIOLM_REQUIRE_CLOSE(la.narrow(1, 0, t + 1), lb.narrow(1, 0, t + 1), 1e-6);
      REQUIRE(test::max_abs_diff(la.narrow(1, t + 1, 1), lb.narrow(1, t + 1, 1)).max_abs > 1e-4);
    }
  }
}

TEST_CASE("a sequence gives the same outputs alone and padded inside a batch", "[models][invariant]") {
  torch::manual_seed(12);
  const auto seq = random_ids(1, 6);
  SECTION("encoder, right padding") {
    auto m = make_task_model(tiny(Family::Encoder), TaskKind::TokenClassification, 4);
    m->eval();
    auto& tc = dynamic_cast<TokenClassificationModelImpl&>(*m);
    ModelInputs alone;
    alone.input_ids = seq;
    ModelInputs batch;
    batch.input_ids = torch::cat({torch::cat({seq, torch::zeros({1, 3}, torch::kLong)}, 1), random_ids(1, 9)});
    batch.attention_mask = torch::cat({torch::cat({torch::ones({1, 6}), torch::zeros({1, 3})}, 1), torch::ones({1, 9})}).to(torch::kLong);
    const auto a = tc.forward(alone).logits[0], b = tc.forward(batch).logits[0].narrow(0, 0, 6);
    BIOLM_REQUIRE_CLOSE(a, b, 1e-5);
  }
  SECTION("decoder, left padding (positions count real tokens), and sequence classification pooling") {
    for (bool moe : {false, true}) {
      auto c = tiny(Family::Decoder);
      if (moe) c = with_moe(c);
      SequenceClassificationModelImpl m(c, 3);
      m.eval();
      ModelInputs alone;
      alone.input_ids = seq;
      ModelInputs batch;
      batch.input_ids = torch::cat({torch::cat({torch::zeros({1, 3}, torch::kLong), seq}, 1), random_ids(1, 9)});
      batch.attention_mask = torch::cat({torch::cat({torch::zeros({1, 3}), torch::ones({1, 6})}, 1), torch::ones({1, 9})}).to(torch::kLong);
      const auto ha = m.body().forward(alone).hidden[0];
      const auto hb = m.body().forward(batch).hidden[0].narrow(0, 3, 6);
      REQUIRE(torch::isfinite(m.body().forward(batch).hidden).all().item<bool>());
      BIOLM_REQUIRE_CLOSE(ha, hb, 1e-5);
      BIOLM_REQUIRE_CLOSE(m.forward(alone).logits[0], m.forward(batch).logits[0], 1e-5);
    }
  }
}

// Logits (B,T,V) of running `prefix` tokens at once and then the rest one token at a time through
// the KV cache.
torch::Tensor decode_with_cache(CausalLMModelImpl& m, const torch::Tensor& ids, const torch::Tensor& mask,
                                int64_t prefix) {
  ModelInputs step;
  step.input_ids = ids.narrow(1, 0, prefix);
  step.attention_mask = mask.narrow(1, 0, prefix);
  step.use_cache = true;
  auto out = m.forward(step);
  std::vector<torch::Tensor> logits{out.logits};
  KVCache cache = out.cache;
  REQUIRE(cache.length() == prefix);
  for (int64_t t = prefix; t < ids.size(1); ++t) {
    ModelInputs in;
    in.input_ids = ids.narrow(1, t, 1);
    in.attention_mask = mask.narrow(1, 0, t + 1);
    in.past = &cache;
    in.use_cache = true;
    auto o = m.forward(in);
    logits.push_back(o.logits);
    cache = o.cache;
  }
  return torch::cat(logits, 1);
}

TEST_CASE("KV-cache decoding gives the logits of recomputing the whole sequence", "[models][invariant]") {
  torch::manual_seed(13);
  auto c = with_moe(tiny(Family::Decoder));
  CausalLMModelImpl m(c);
  m.eval();
  torch::NoGradGuard no_grad;
  const auto ids = random_ids(2, 9);
  auto mask = torch::ones({2, 9}, torch::kLong);
  mask[1][0] = 0;  // row 1 left-padded by one
  ModelInputs full;
  full.input_ids = ids;
  full.attention_mask = mask;
  const auto ref = m.forward(full).logits;
  // Row 1 position 0 is padding (its output is arbitrary but finite); compare every real position.
  const auto got = decode_with_cache(m, ids, mask, /*prefix=*/5);
  BIOLM_REQUIRE_CLOSE(got[0], ref[0], 1e-5);
  BIOLM_REQUIRE_CLOSE(got[1].narrow(0, 1, 8), ref[1].narrow(0, 1, 8), 1e-5);
  REQUIRE(torch::isfinite(got).all().item<bool>());
}

TEST_CASE("sliding window: each query sees the last W keys, with and without a KV cache", "[models][invariant]") {
  torch::manual_seed(21);
  auto c = tiny(Family::Decoder);
  torch::NoGradGuard no_grad;
  const auto ids = random_ids(2, 9);
  auto mask = torch::ones({2, 9}, torch::kLong);
  mask[1][0] = 0;  // row 1 left-padded by one
  c.sliding_window = 3;
  CausalLMModelImpl windowed(c);
  windowed.eval();
  ModelInputs full;
  full.input_ids = ids;
  full.attention_mask = mask;
  const auto ref = windowed.forward(full).logits;
  SECTION("the last token sees L * (W - 1) tokens back, no further") {
    // Each layer looks W - 1 tokens back, so after L layers token 8 depends on 8 - L(W-1) .. 8.
    const int64_t first = 8 - c.n_layers * (*c.sliding_window - 1);
    REQUIRE(first > 0);
    auto changed = ids.clone();
    changed.narrow(1, 0, first).fill_(7);
    ModelInputs in = full;
    in.input_ids = changed;
    BIOLM_REQUIRE_CLOSE(windowed.forward(in).logits.select(1, 8), ref.select(1, 8), 1e-5);
    changed[0][first] = changed[0][first].item<int64_t>() == 8 ? 9 : 8;  // the furthest visible token matters
    in.input_ids = changed;
    REQUIRE((windowed.forward(in).logits[0][8] - ref[0][8]).abs().max().item<double>() > 1e-4);
  }
  SECTION("KV-cache decoding equals recomputing") {
    const auto got = decode_with_cache(windowed, ids, mask, /*prefix=*/2);
    BIOLM_REQUIRE_CLOSE(got[0], ref[0], 1e-5);
    BIOLM_REQUIRE_CLOSE(got[1].narrow(0, 1, 8), ref[1].narrow(0, 1, 8), 1e-5);
  }
  SECTION("a window as long as the sequence hides nothing") {
    c.sliding_window = 9;
    CausalLMModelImpl wide(c);
    wide.eval();
    c.sliding_window.reset();
    CausalLMModelImpl plain(c);
    plain.eval();
    // Same weights in both.
    auto src = plain.named_parameters();
    for (auto& p : wide.named_parameters()) p.value().copy_(src[p.key()]);
    BIOLM_REQUIRE_CLOSE(wide.forward(full).logits, plain.forward(full).logits, 0.0);
  }
}

TEST_CASE("packed examples (segment_ids) equal running each example separately", "[models][invariant]") {
  torch::manual_seed(14);
  for (auto family : {Family::Encoder, Family::Decoder}) {
    DYNAMIC_SECTION((family == Family::Encoder ? "encoder" : "decoder")) {
      auto body = make_body(tiny(family));
      body->eval();
      const auto a = random_ids(1, 4), b = random_ids(1, 5);
      ModelInputs packed;
      packed.input_ids = torch::cat({a, b}, 1);
      packed.segment_ids = torch::tensor({{0, 0, 0, 0, 1, 1, 1, 1, 1}});
      const auto h = body->forward(packed).hidden[0];
      ModelInputs ia, ib;
      ia.input_ids = a;
      ib.input_ids = b;
      BIOLM_REQUIRE_CLOSE(h.narrow(0, 0, 4), body->forward(ia).hidden[0], 1e-5);
      BIOLM_REQUIRE_CLOSE(h.narrow(0, 4, 5), body->forward(ib).hidden[0], 1e-5);
    }
  }
}

TEST_CASE("inputs_embeds replace the token embedding lookup", "[models]") {
  torch::manual_seed(15);
  auto body = make_body(tiny(Family::Decoder));
  body->eval();
  ModelInputs a, b;
  a.input_ids = random_ids(2, 5);
  b.inputs_embeds = body->embeddings->tok->forward(a.input_ids);
  BIOLM_REQUIRE_CLOSE(body->forward(a).hidden, body->forward(b).hidden, 0.0);
}

// ---- gradients --------------------------------------------------------------------------------------

TEST_CASE("float64 gradients match central finite differences", "[models][grad]") {
  for (auto family : {Family::Encoder, Family::Decoder}) {
    DYNAMIC_SECTION((family == Family::Encoder ? "encoder (post-LN, GELU)" : "decoder (pre-LN, RoPE, GQA, SwiGLU)")) {
      torch::manual_seed(16);
      auto c = tiny(family);
      c.n_layers = 1;
      auto m = make_task_model(c, family == Family::Encoder ? TaskKind::SequenceClassification : TaskKind::CausalLM, 3);
      m->to(torch::kDouble);
      m->eval();
      data::Batch batch;
      batch["input_ids"] = random_ids(2, 5);
      batch["attention_mask"] = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}});
      if (family == Family::Encoder) batch["labels"] = torch::tensor({2, 0});
      m->zero_grad();
      m->run(batch).loss_sum.backward();  // the summed loss: the entry point the trainer uses
      const double eps = 1e-6;
      int64_t checked = 0;
      for (const auto& p : m->named_parameters()) {
        auto param = p.value();
        const auto grad = param.grad();
        REQUIRE(grad.defined());
        auto flat = param.data().view({-1});
        for (int64_t i : {int64_t{0}, flat.size(0) / 2, flat.size(0) - 1}) {
          torch::NoGradGuard g;
          const double orig = flat[i].item<double>();
          flat[i] = orig + eps;
          const double up = m->run(batch).loss_sum.item<double>();
          flat[i] = orig - eps;
          const double down = m->run(batch).loss_sum.item<double>();
          flat[i] = orig;
          const double numeric = (up - down) / (2 * eps);
          const double analytic = grad.view({-1})[i].item<double>();
          INFO(p.key() << "[" << i << "]: analytic " << analytic << " numeric " << numeric);
          REQUIRE(std::abs(analytic - numeric) <= 1e-6 + 1e-5 * std::abs(numeric));
          ++checked;
        }
      }
      REQUIRE(checked > 30);
    }
  }
}

TEST_CASE("gradient checkpointing in the body gives the same gradients", "[models][grad]") {
  auto run = [](bool ckpt) {
    auto c = with_moe(tiny(Family::Decoder));
    c.hidden_dropout = 0.1;
    c.gradient_checkpointing = ckpt;
    torch::manual_seed(17);
    CausalLMModelImpl m(c);
    m.train();
    data::Batch b;
    torch::manual_seed(18);
    b["input_ids"] = random_ids(2, 7);
    torch::manual_seed(19);
    m.run(b).loss_sum.backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : m.parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto a = run(false), b = run(true);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) BIOLM_REQUIRE_CLOSE(a[i], b[i], 1e-6);
}

TEST_CASE("gradient checkpointing with LoRA on a frozen body (QLoRA too) gives the adapters the same gradients",
          "[models][grad]") {
  // The body's input (the frozen embeddings' output) carries no graph: before the anchor input of
  // nn::checkpoint, the blocks' LoRA parameters got no gradient at all under checkpointing.
  for (bool quantized : {false, true}) {
    auto run = [quantized](bool ckpt) {
      auto c = tiny(Family::Decoder);
      c.hidden_size = 64;
      c.gradient_checkpointing = ckpt;
      if (quantized) c.quantize = QuantizeConfig{"nf4", true};
      torch::manual_seed(17);
      CausalLMModelImpl m(c);
      peft::set_requires_grad(m, false);
      peft::apply_lora(m, peft::LoraOptions(4, 8.0).targets({"**.q_proj", "**.down"}));
      {
        torch::NoGradGuard ng;
        for (auto& p : m.named_parameters())
          if (p.key().find("lora_b") != std::string::npos) p.value().normal_(0.0, 0.1);
      }
      m.train();
      data::Batch b;
      torch::manual_seed(18);
      b["input_ids"] = random_ids(2, 7);
      m.run(b).loss_sum.backward();
      std::vector<torch::Tensor> grads;
      for (auto& p : m.named_parameters()) {
        if (!p.value().requires_grad()) continue;
        INFO(p.key());
        REQUIRE(p.value().grad().defined());
        grads.push_back(p.value().grad().clone());
      }
      return grads;
    };
    const auto a = run(false), b = run(true);
    REQUIRE(a.size() == b.size());
    REQUIRE(!a.empty());
    for (size_t i = 0; i < a.size(); ++i) BIOLM_REQUIRE_CLOSE(a[i], b[i], 1e-5);
  }
}

TEST_CASE("a tiny model of each family memorises a small batch", "[models][train]") {
  for (auto family : {Family::Encoder, Family::Decoder}) {
    DYNAMIC_SECTION((family == Family::Encoder ? "encoder, masked LM" : "decoder, causal LM with MoE")) {
      torch::manual_seed(20);
      auto c = tiny(family);
      if (family == Family::Decoder) c = with_moe(c);
      auto m = make_task_model(c, family == Family::Encoder ? TaskKind::MaskedLM : TaskKind::CausalLM);
      m->train();
      data::Batch b;
      b["input_ids"] = random_ids(4, 12);
      if (family == Family::Encoder) {
        auto labels = torch::full({4, 12}, -100, torch::kLong);
        auto masked = b["input_ids"].clone();
        for (int64_t t : {2, 5, 9}) {
          labels.select(1, t).copy_(b["input_ids"].select(1, t));
          masked.select(1, t).fill_(4);  // a [MASK] id
        }
        b["input_ids"] = masked;
        b["labels"] = labels;
      }
      torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
      double loss = 1e9;
      int step = 0;
      for (; step < 300 && loss >= 0.05; ++step) {
        opt.zero_grad();
        const auto out = m->run(b);
        const auto mean = out.loss_sum / static_cast<double>(out.n_target_tokens);
        mean.backward();
        opt.step();
        loss = mean.item<double>();
      }
      INFO("steps " << step << " loss " << loss);
      REQUIRE(loss < 0.05);
    }
  }
}

// ---- MLM: the last block at the masked rows only ---------------------------------------------------

namespace {

// Loss, sparse logits and every parameter gradient of one MLM forward/backward.
struct MlmRun {
  torch::Tensor loss, logits;
  std::vector<torch::Tensor> grads;
};

MlmRun mlm_run(MaskedLMModelImpl& m, const ModelInputs& in, const torch::Tensor& labels, bool rows_only) {
  m.sparse_last_layer = rows_only;
  m.zero_grad(true);
  auto out = m.forward(in, labels);
  out.loss_sum.backward();
  MlmRun r{out.loss_sum.detach(), out.logits.detach(), {}};
  for (const auto& p : m.parameters()) r.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return r;
}

void require_same_run(const MlmRun& a, const MlmRun& b) {
  REQUIRE(a.loss.item<double>() == Approx(b.loss.item<double>()).epsilon(1e-5));
  BIOLM_REQUIRE_CLOSE(a.logits, b.logits, 1e-4);
  REQUIRE(a.grads.size() == b.grads.size());
  int64_t compared = 0;
  for (size_t i = 0; i < a.grads.size(); ++i) {
    REQUIRE(a.grads[i].defined() == b.grads[i].defined());
    if (!a.grads[i].defined()) continue;
    BIOLM_REQUIRE_CLOSE(a.grads[i], b.grads[i], 1e-4);
    ++compared;
  }
  REQUIRE(compared > 10);
}

}  // namespace

TEST_CASE("MLM with the last block at the masked rows only equals the full computation", "[models][mlm]") {
  torch::manual_seed(5);
  const int64_t B = 3, T = 12;
  auto labels = torch::full({B, T}, -100, torch::kLong);
  // Uneven rows per sequence (3, 1, 4), including the first and last positions.
  for (auto [b, t] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {0, 5}, {0, 11}, {1, 7}, {2, 1}, {2, 2}, {2, 6}, {2, 9}}) {
    labels[b][t] = 10 + b + t;
  }
  ModelInputs in;
  in.input_ids = random_ids(B, T);
  auto c = tiny(Family::Encoder);
  SECTION("post-LN BERT, padding") {
    in.attention_mask = torch::ones({B, T}, torch::kLong);
    in.attention_mask[1].narrow(0, 9, 3).zero_();
    in.token_type_ids = (torch::arange(T) >= 6).to(torch::kLong).expand({B, T}).contiguous();
  }
  SECTION("pre-LN Megatron-BERT style with rotary positions") {
    c.norm_placement = NormPlacement::Pre;
    c.final_norm = true;
    c.positions = PositionKind::Rotary;
  }
  SECTION("activation checkpointing") {
    c.gradient_checkpointing = true;
  }
  SECTION("packed segments (mask rows differ per query)") {
    in.segment_ids = (torch::arange(T) >= 5).to(torch::kLong).expand({B, T}).contiguous();
  }
  MaskedLMModelImpl m(c);
  {
    // Sharper attention than the 0.02 init gives, so that every query row's mask and rotary
    // angles visibly matter (a near-uniform softmax would hide a wrong row).
    torch::NoGradGuard no_grad;
    for (auto& p : m.named_parameters()) {
      if (p.key().find("q_proj.weight") != std::string::npos || p.key().find("k_proj.weight") != std::string::npos) {
        p.value().mul_(25.0);
      }
    }
  }
  m.train();  // dropout is 0 in tiny(): train mode exercises the checkpointing path
  const auto full = mlm_run(m, in, labels, false);
  const auto rows = mlm_run(m, in, labels, true);
  REQUIRE(rows.logits.size(0) == 8);
  require_same_run(rows, full);
}

TEST_CASE("output_positions: MoE last blocks fall back, unordered rows are refused", "[models][mlm]") {
  torch::manual_seed(6);
  auto c = with_moe(tiny(Family::Encoder));
  c.moe.layers = {c.n_layers - 1};
  MaskedLMModelImpl m(c);
  ModelInputs in;
  in.input_ids = random_ids(2, 8);
  auto labels = torch::full({2, 8}, -100, torch::kLong);
  labels[0][3] = 5, labels[1][0] = 6, labels[1][7] = 7;
  require_same_run(mlm_run(m, in, labels, true), mlm_run(m, in, labels, false));

  MaskedLMModelImpl dense(tiny(Family::Encoder));
  ModelInputs bad = in;
  bad.output_positions = torch::tensor({1, 0, 0, 3}, torch::kLong).view({2, 2});  // batch 1 before batch 0
  REQUIRE_THROWS_WITH(dense.body().forward(bad), Catch::Contains("grouped by batch row"));
  bad.output_positions = torch::tensor({0, 3, 2, 1}, torch::kLong).view({2, 2});  // batch 2 of 2
  REQUIRE_THROWS_WITH(dense.body().forward(bad), Catch::Contains("out of range"));
  bad.output_positions = torch::tensor({0, 8}, torch::kLong).view({1, 2});  // position 8 of 8
  REQUIRE_THROWS_WITH(dense.body().forward(bad), Catch::Contains("out of range"));
  // A decoder takes the same rows from its full output.
  CausalLMModelImpl dec(tiny(Family::Decoder));
  dec.eval();
  ModelInputs rows = in;
  rows.output_positions = torch::tensor({0, 2, 1, 5, 1, 7}, torch::kLong).view({3, 2});
  const auto full = dec.body().forward(in).hidden;
  const auto picked = dec.body().forward(rows).hidden;
  REQUIRE(picked.sizes() == torch::IntArrayRef({3, full.size(2)}));
  BIOLM_REQUIRE_CLOSE(picked[1], full[1][5], 1e-6);
}

// ---- heads and ignore-index ----------------------------------------------------------------------------

TEST_CASE("every head's loss ignores -100 targets and equals a manual cross entropy", "[models][heads]") {
  torch::manual_seed(21);
  const auto ids = random_ids(3, 6);
  SECTION("masked LM, sparse and dense logits") {
    MaskedLMModelImpl m(tiny(Family::Encoder));
    m.eval();
    auto labels = torch::full({3, 6}, -100, torch::kLong);
    labels[0][1] = 7, labels[1][4] = 9, labels[2][0] = 11;
    ModelInputs in;
    in.input_ids = ids;
    m.sparse_logits = false;
    const auto dense = m.forward(in, labels);
    m.sparse_logits = true;
    const auto sparse = m.forward(in, labels);
    REQUIRE(dense.n_target_tokens == 3);
    REQUIRE(sparse.n_target_tokens == 3);
    REQUIRE(sparse.logits.sizes() == torch::IntArrayRef({3, 100}));
    // Heads sum their loss (reduction "sum"); mean_loss() is the mean over the 3 targets.
    REQUIRE(dense.loss_sum.item<double>() == Approx(3 * manual_ce(dense.logits, labels)).epsilon(1e-5));
    REQUIRE(dense.mean_loss().item<double>() == Approx(manual_ce(dense.logits, labels)).epsilon(1e-5));
    REQUIRE(sparse.loss_sum.item<double>() == Approx(dense.loss_sum.item<double>()).epsilon(1e-5));
    BIOLM_REQUIRE_CLOSE(sparse.logits[1], dense.logits[1][4], 1e-5);
  }
  SECTION("causal LM shifts: logits at t predict token t+1; padding and segment starts are ignored") {
    CausalLMModelImpl m(tiny(Family::Decoder));
    m.eval();
    data::Batch b;
    b["input_ids"] = ids;
    b["attention_mask"] = torch::tensor({{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}});
    const auto out = m.run(b);
    auto expect_labels = ids.clone();
    expect_labels[1][4] = -100, expect_labels[1][5] = -100;
    REQUIRE(out.n_target_tokens == 3 * 5 - 2);
    REQUIRE(out.loss_sum.item<double>() ==
            Approx(13 * manual_ce(out.logits.narrow(1, 0, 5), expect_labels.narrow(1, 1, 5))).epsilon(1e-5));
    ModelInputs packed;
    packed.input_ids = ids;
    packed.segment_ids = torch::tensor({{0, 0, 0, 1, 1, 1}, {0, 0, 0, 0, 0, 0}, {0, 1, 1, 1, 1, 1}});
    const auto p = m.forward(packed, ids);
    REQUIRE(p.n_target_tokens == 15 - 2);
  }
  SECTION("token classification") {
    TokenClassificationModelImpl m(tiny(Family::Encoder), 5);
    m.eval();
    auto labels = torch::randint(0, 5, {3, 6}, torch::kLong);
    labels.select(1, 0).fill_(-100);
    ModelInputs in;
    in.input_ids = ids;
    const auto out = m.forward(in, labels);
    REQUIRE(out.n_target_tokens == 15);
    REQUIRE(out.loss_sum.item<double>() == Approx(15 * manual_ce(out.logits, labels)).epsilon(1e-5));
  }
  SECTION("sequence classification (encoder pair and decoder), regression") {
    for (auto family : {Family::Encoder, Family::Decoder}) {
      SequenceClassificationModelImpl m(tiny(family), 3);
      m.eval();
      data::Batch b;
      b["input_ids"] = ids;
      if (family == Family::Encoder) b["token_type_ids"] = torch::tensor({{0, 0, 0, 1, 1, 1}}).expand({3, 6});
      b["labels"] = torch::tensor({2, -100, 0});
      const auto out = m.run(b);
      REQUIRE(out.n_target_tokens == 2);
      REQUIRE(out.loss_sum.item<double>() == Approx(2 * manual_ce(out.logits, b["labels"])).epsilon(1e-5));
    }
    SequenceClassificationModelImpl r(tiny(Family::Encoder), 1, true);
    r.eval();
    data::Batch b;
    b["input_ids"] = ids;
    b["scores"] = torch::tensor({0.5f, 1.5f, -2.0f});
    const auto out = r.run(b);
    REQUIRE(out.logits.sizes() == torch::IntArrayRef({3}));
    REQUIRE(out.n_target_tokens == 3);
    REQUIRE(out.loss_sum.item<double>() == Approx((out.logits - b["scores"]).pow(2).sum().item<double>()).epsilon(1e-6));
  }
  SECTION("span QA") {
    SpanQAModelImpl m(tiny(Family::Encoder));
    m.eval();
    data::Batch b;
    b["input_ids"] = ids;
    b["start_positions"] = torch::tensor({1, -100, 3});
    b["end_positions"] = torch::tensor({2, -100, 5});
    const auto out = m.forward(TaskModelImpl::inputs_from_batch(b), b["start_positions"], b["end_positions"]);
    const double expect = (manual_ce(out.extra.at("start_logits"), b["start_positions"]) +
                           manual_ce(out.extra.at("end_logits"), b["end_positions"])) / 2;
    REQUIRE(out.n_target_tokens == 2);
    REQUIRE(out.mean_loss().item<double>() == Approx(expect).epsilon(1e-5));  // transformers' span loss
    REQUIRE(m.run(b).loss_sum.item<double>() == Approx(2 * expect).epsilon(1e-5));
  }
  SECTION("multiple choice (B,K,T)") {
    MultipleChoiceModelImpl m(tiny(Family::Encoder));
    m.eval();
    data::Batch b;
    b["choice_ids"] = torch::randint(3, 100, {2, 4, 5}, torch::kLong);
    b["labels"] = torch::tensor({3, -100});
    const auto out = m.run(b);
    REQUIRE(out.logits.sizes() == torch::IntArrayRef({2, 4}));
    REQUIRE(out.n_target_tokens == 1);
    REQUIRE(out.loss_sum.item<double>() == Approx(manual_ce(out.logits, b["labels"])).epsilon(1e-5));
    // choice k of example b is scored alone exactly as inside the batch
    ModelInputs one;
    one.input_ids = b["choice_ids"].narrow(0, 1, 1).narrow(1, 2, 1);
    REQUIRE(m.forward(one).logits[0][0].item<double>() == Approx(out.logits[1][2].item<double>()).epsilon(1e-5));
  }
  SECTION("MoE aux loss is added to the task loss") {
    auto c = with_moe(tiny(Family::Decoder));
    c.moe.aux_loss_weight = 0.5;
    CausalLMModelImpl m(c);
    m.eval();
    data::Batch b;
    b["input_ids"] = ids;
    const auto out = m.forward(TaskModelImpl::inputs_from_batch(b), ids);
    const double aux = out.extra.at("aux_loss").item<double>();
    REQUIRE(aux > 0);
    // transformers adds the weighted aux loss to the mean: mean = CE + aux, so the sum adds it per target.
    REQUIRE(out.n_target_tokens == 15);
    REQUIRE(out.mean_loss().item<double>() ==
            Approx(manual_ce(out.logits.narrow(1, 0, 5), ids.narrow(1, 1, 5)) + aux).epsilon(1e-5));
    REQUIRE(m.run(b).loss_sum.item<double>() == Approx(out.loss_sum.item<double>()).epsilon(1e-6));
  }
}

// ---- generation ---------------------------------------------------------------------------------------

TEST_CASE("top-k / top-p filtering keeps the right tokens", "[models][generate]") {
  const auto logits = torch::log(torch::tensor({{0.5, 0.3, 0.15, 0.05}}));
  const auto k2 = filter_logits(logits, 2, 1.0);
  REQUIRE(torch::equal(torch::isfinite(k2), torch::tensor({{true, true, false, false}})));
  const auto p = filter_logits(logits, 0, 0.8);  // 0.5 + 0.3 reaches 0.8
  REQUIRE(torch::equal(torch::isfinite(p), torch::tensor({{true, true, false, false}})));
  const auto p2 = filter_logits(logits, 0, 0.81);
  REQUIRE(torch::equal(torch::isfinite(p2), torch::tensor({{true, true, true, false}})));
  GenerationOptions bad;
  bad.top_p = 0;
  REQUIRE_THROWS_AS(validate(bad), ConfigError);
}

TEST_CASE("generation: greedy equals argmax of recomputation, left padding, seeds, stop tokens", "[models][generate]") {
  torch::manual_seed(22);
  CausalLMModelImpl m(tiny(Family::Decoder));
  const auto prompt = random_ids(1, 4);
  GenerationOptions greedy;
  greedy.max_new_tokens = 6;
  const auto g = generate(m, prompt, {}, greedy);
  REQUIRE(g.sequences.sizes() == torch::IntArrayRef({1, 10}));
  {
    torch::NoGradGuard no_grad;
    m.eval();
    auto seq = prompt;
    for (int i = 0; i < 6; ++i) {
      ModelInputs in;
      in.input_ids = seq;
      const auto next = m.forward(in).logits.select(1, seq.size(1) - 1).argmax(-1, true);
      seq = torch::cat({seq, next}, 1);
    }
    REQUIRE(torch::equal(seq, g.sequences));
  }
  SECTION("a left-padded batch generates what each row generates alone") {
    const auto other = random_ids(1, 6);
    const auto ids = torch::cat({torch::cat({torch::zeros({1, 2}, torch::kLong), prompt}, 1), other});
    const auto mask = torch::cat({torch::cat({torch::zeros({1, 2}), torch::ones({1, 4})}, 1), torch::ones({1, 6})}).to(torch::kLong);
    const auto batch = generate(m, ids, mask, greedy);
    REQUIRE(torch::equal(batch.new_tokens[0], g.new_tokens[0]));
    REQUIRE(torch::equal(batch.new_tokens[1], generate(m, other, {}, greedy).new_tokens[0]));
  }
  SECTION("sampling is deterministic with a seed; top_k = 1 is greedy") {
    GenerationOptions s;
    s.max_new_tokens = 8;
    s.temperature = 1.5;
    s.seed = 42;
    const auto a = generate(m, prompt, {}, s), b = generate(m, prompt, {}, s);
    REQUIRE(torch::equal(a.sequences, b.sequences));
    bool differs = false;
    for (uint64_t seed = 1; seed < 6 && !differs; ++seed) {
      s.seed = seed;
      differs = !torch::equal(generate(m, prompt, {}, s).sequences, a.sequences);
    }
    REQUIRE(differs);
    s.top_k = 1;
    s.max_new_tokens = 6;
    REQUIRE(torch::equal(generate(m, prompt, {}, s).sequences, g.sequences));
  }
  SECTION("a stop token ends a row; later steps are padding with mask 0") {
    GenerationOptions s = greedy;
    const int64_t stop = g.new_tokens[0][2].item<int64_t>();
    s.stop_tokens = {stop};
    s.pad_token_id = 0;
    const auto r = generate(m, prompt, {}, s);
    int64_t first = 0;
    while (g.new_tokens[0][first].item<int64_t>() != stop) ++first;
    REQUIRE(r.new_tokens.size(1) == first + 1);  // the only row finished: generation stops
    REQUIRE(r.n_new[0].item<int64_t>() == first + 1);
  }
}

TEST_CASE("prompt tuning in generation: the soft prompt prefills the cache, equals recomputation through run()",
          "[models][generate][prompt]") {
  torch::manual_seed(23);
  const auto c = tiny(Family::Decoder);
  auto model = std::make_shared<CausalLMModelImpl>(c);  // peft::apply walks the modules from the root
  auto& m = *model;
  const auto plain_prompt = random_ids(1, 4);
  GenerationOptions greedy;
  greedy.max_new_tokens = 6;
  const auto without = generate(m, plain_prompt, {}, greedy);
  peft::MethodConfig pc;
  pc.method = peft::Method::PromptTuning;
  pc.prompt = peft::PromptTuningOptions(5, c.hidden_size).init_std(1.0);
  peft::apply(m, pc);
  REQUIRE(m.soft_prompt());
  // Reference: the whole sequence through run() (the training path: the soft prompt in front),
  // the argmax of the last real position appended each step, no cache.
  const auto by_recomputation = [&](const torch::Tensor& ids, int64_t n) {
    torch::NoGradGuard no_grad;
    m.eval();
    auto seq = ids;
    for (int64_t i = 0; i < n; ++i) {
      data::Batch b;
      b["input_ids"] = seq;
      b["attention_mask"] = torch::ones_like(seq);
      const auto logits = m.run(b).logits;  // (1, P+t, V)
      REQUIRE(logits.size(1) == 5 + seq.size(1));
      seq = torch::cat({seq, logits.select(1, logits.size(1) - 1).argmax(-1, true)}, 1);
    }
    return seq;
  };
  const auto g = generate(m, plain_prompt, {}, greedy);
  REQUIRE(g.sequences.sizes() == torch::IntArrayRef({1, 10}));  // the tokens only, no prompt positions
  REQUIRE(g.attention_mask.sizes() == torch::IntArrayRef({1, 10}));
  REQUIRE(torch::equal(g.sequences, by_recomputation(plain_prompt, 6)));
  REQUIRE_FALSE(torch::equal(g.sequences, without.sequences));  // the soft prompt steers generation

  SECTION("a left-padded batch generates what each row generates alone") {
    const auto other = random_ids(1, 6);
    const auto ids = torch::cat({torch::cat({torch::zeros({1, 2}, torch::kLong), plain_prompt}, 1), other});
    const auto mask =
        torch::cat({torch::cat({torch::zeros({1, 2}), torch::ones({1, 4})}, 1), torch::ones({1, 6})}).to(torch::kLong);
    const auto batch = generate(m, ids, mask, greedy);
    REQUIRE(torch::equal(batch.new_tokens[0], g.new_tokens[0]));
    REQUIRE(torch::equal(batch.new_tokens[1], by_recomputation(other, 6).narrow(1, 6, 6)[0]));
    REQUIRE(batch.n_new.sum().item<int64_t>() == 12);
  }
  SECTION("apply_soft_prompt: inputs_embeds (B,P+T,C), mask extended with ones, ids cleared") {
    ModelInputs in;
    in.input_ids = plain_prompt;
    REQUIRE(apply_soft_prompt(m, in) == 5);
    REQUIRE_FALSE(in.input_ids.defined());
    REQUIRE(in.inputs_embeds.sizes() == torch::IntArrayRef({1, 9, c.hidden_size}));
    REQUIRE(torch::equal(in.attention_mask, torch::ones({1, 9}, torch::kLong)));
  }
}

TEST_CASE("prompt tuning on multiple choice: every option row gets the prompt, padding changes nothing",
          "[models][prompt]") {
  torch::manual_seed(24);
  const auto c = tiny(Family::Encoder);
  auto m = make_task_model(c, TaskKind::MultipleChoice, 2);
  peft::MethodConfig pc;
  pc.method = peft::Method::PromptTuning;
  pc.prompt = peft::PromptTuningOptions(3, c.hidden_size).init_std(1.0);
  m->eval();
  // Two questions, three options each, rows of different real lengths padded to 6.
  const std::vector<std::vector<int64_t>> lengths = {{6, 4, 5}, {3, 6, 2}};
  const auto ids = random_ids(2 * 3, 6).view({2, 3, 6});
  auto mask = torch::zeros({2, 3, 6}, torch::kLong);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k = 0; k < 3; ++k) mask[b][k].narrow(0, 0, lengths[b][k]).fill_(1);
  data::Batch batch;
  batch["choice_ids"] = ids;
  batch["attention_mask"] = mask;
  batch["token_type_ids"] = torch::zeros_like(ids);
  batch["labels"] = torch::tensor({2, 0}, torch::kLong);
  torch::Tensor before;
  {
    torch::NoGradGuard no_grad;
    before = m->run(batch).logits;
  }
  peft::apply(*m, pc);
  const auto out = m->run(batch);
  REQUIRE(out.logits.sizes() == torch::IntArrayRef({2, 3}));  // per option, no prompt positions to strip
  REQUIRE(out.loss_sum.defined());
  REQUIRE(test::max_abs_diff(out.logits, before).max_abs > 1e-3);  // the prompt matters
  // Each option alone, unpadded, as a one-question one-option batch: the same score.
  torch::NoGradGuard no_grad;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t k = 0; k < 3; ++k) {
      data::Batch one;
      one["choice_ids"] = ids[b][k].narrow(0, 0, lengths[b][k]).view({1, 1, -1});
      one["attention_mask"] = torch::ones({1, 1, lengths[b][k]}, torch::kLong);
      one["token_type_ids"] = torch::zeros({1, 1, lengths[b][k]}, torch::kLong);
      const auto alone = m->run(one).logits;
      INFO("question " << b << " option " << k);
      REQUIRE(std::abs(alone.item<double>() - out.logits[b][k].item<double>()) < 1e-5);
    }
  }
  // The loss reaches the prompt.
  torch::GradMode::set_enabled(true);
  m->train();
  m->run(batch).loss_sum.backward();
  const auto& prompt = m->soft_prompt()->prefix_module()->named_parameters()["embeddings"];
  REQUIRE(prompt.grad().defined());
  REQUIRE(prompt.grad().abs().sum().item<double>() > 0);
}

// ---- CUDA ------------------------------------------------------------------------------------------------

TEST_CASE("CUDA and CPU give the same outputs (fp32 and bf16)", "[cuda][.]") {
  REQUIRE(core::cuda_available());
  for (auto family : {Family::Encoder, Family::Decoder}) {
    DYNAMIC_SECTION((family == Family::Encoder ? "encoder" : "decoder with MoE")) {
      torch::manual_seed(30);
      auto c = tiny(family);
      if (family == Family::Decoder) c = with_moe(c);
      auto m = make_task_model(c, family == Family::Encoder ? TaskKind::MaskedLM : TaskKind::CausalLM);
      m->eval();
      data::Batch b;
      b["input_ids"] = random_ids(2, 8);
      b["attention_mask"] = torch::tensor({{1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1, 1, 1}});
      if (family == Family::Encoder) {
        b["labels"] = torch::full({2, 8}, -100, torch::kLong);
        b["labels"][0][3] = 5;
        b["labels"][1][6] = 7;
      }
      torch::NoGradGuard no_grad;
      const auto cpu = m->run(b);
      m->to(torch::kCUDA);
      const auto gpu = m->run(b.to(torch::kCUDA));
      // fp32: TF32 may be on for matmuls; 1e-3 covers it at these sizes (logits ~ 1).
      BIOLM_REQUIRE_CLOSE(cpu.logits, gpu.logits.cpu(), 1e-3);
      REQUIRE(cpu.loss_sum.item<double>() == Approx(gpu.loss_sum.item<double>()).epsilon(1e-3));
      m->to(torch::kBFloat16);
      const auto bf = m->run(b.to(torch::kCUDA));
      // bf16 keeps 8 mantissa bits (relative 4e-3 per op): 5e-2 absolute on logits of a 2-layer model.
      BIOLM_REQUIRE_CLOSE(cpu.logits, bf.logits.to(torch::kFloat).cpu(), 5e-2);
      REQUIRE(cpu.loss_sum.item<double>() == Approx(bf.loss_sum.item<double>()).epsilon(2e-2));
    }
  }
  SECTION("generation with a seed gives the same tokens on CUDA as on CPU (greedy)") {
    torch::manual_seed(31);
    CausalLMModelImpl m(tiny(Family::Decoder));
    const auto prompt = random_ids(2, 4);
    GenerationOptions o;
    o.max_new_tokens = 5;
    const auto cpu = generate(m, prompt, {}, o);
    m.to(torch::kCUDA);
    const auto gpu = generate(m, prompt.cuda(), {}, o);
    REQUIRE(torch::equal(cpu.sequences, gpu.sequences.cpu()));
  }
}
