// bench/cases.cpp: the five cases of biolm-bench on libbiolm's own models, peft and optimizer.
//
//   clm_full   CausalLM step: forward, mean next-token cross entropy, backward, AdamW (lr 1e-4, wd 0)
//   clm_lora   the same with the body frozen and LoRA r 8, alpha 16 on every q_proj and v_proj
//   clm_dora   clm_lora with DoRA (LoraOptions::use_dora): a magnitude per output row on top
//   clm_qlora  clm_lora on a frozen NF4 base (double-quantized, every Linear of the blocks; QLoRA),
//              quantized block by block as the model is built
//   clm_dp_lora clm_lora as a DP-SGD step (train/dp.h): per-example gradients of the adapters
//              from recorded activations, clipping to C = 1, noise σ = 1, AdamW
//   clm_hybrid clm_lora plus every norm weight, every bias and the LM head trained in full
//              (peft::Method::Hybrid, the adaptation study's hybrid setting)
//   mlm        MaskedLM step on the encoder, 15 % of positions masked, logits only at those
//   tok_full   token classification step on the encoder (NER: 3 labels, every position labelled),
//              every weight trained: what fine-tuning all-MiniLM-L6-v2 on NCBI-disease does
//   tok_lora   the same with LoRA r 8, alpha 16 on q and v and the classifier trained in full
//   forward    CausalLM logits, inference mode
//   generate   greedy decoding of 32 new tokens per row after a 16-token prompt, KV cache
//
// Data: token ids uniform in [0, V) from the seed (the reference draws its own with the same
// shapes; only shapes and the mask fraction matter for speed). The step never reads a value back
// to the host: the last loss is read once, after the timed loop.
#include <torch/torch.h>

#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define BIOLM_BENCH_HAS_PROFILER 1
#endif

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>

#include "bench_config.h"
#include "biolm/core/compat.h"
#include "biolm/core/error.h"
#include "biolm/data/batch.h"
#include "biolm/models/generate.h"
#include "biolm/train/dp.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/lora.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"
#include "biolm/peft/method.h"
#include "biolm/train/config.h"
#include "biolm/train/optim.h"
#include "harness.h"

namespace biolm::bench {

namespace {

constexpr int64_t kPromptTokens = 16;
constexpr int64_t kNewTokens = 32;
constexpr double kMaskFraction = 0.15;
constexpr int64_t kTokenLabels = 3;  // NER with one entity type: O, B-, I-

int64_t count_trainable(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

// After timing: one more call of fn under the autograd profiler, its chrome trace at o.profile_path.
void profile_once(const RunOptions& o, CaseResult& r, const std::string& what, const std::function<void()>& fn) {
  if (o.profile_path.empty()) return;
#ifdef BIOLM_BENCH_HAS_PROFILER
  torch::autograd::profiler::RecordProfile profile(o.profile_path);
  fn();
  r.notes.push_back("profile of one " + what + " written to " + o.profile_path);
#else
  (void)r;
  (void)what;
  (void)fn;
  throw ConfigError("profile", "this LibTorch has no legacy autograd profiler; use --breakdown");
#endif
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

CaseResult run_case(const BenchConfig& config, const std::string& case_name, const RunOptions& o) {
  const bool is_mlm = case_name == "mlm";
  const bool is_tok = case_name == "tok_full" || case_name == "tok_lora";
  const bool is_encoder_case = is_mlm || is_tok;
  const bool is_dp = case_name == "clm_dp_lora";
  const bool is_dora = case_name == "clm_dora";
  const bool is_qlora = case_name == "clm_qlora";
  const bool is_lora = case_name == "clm_lora" || is_dp || is_dora || is_qlora;
  const bool is_hybrid = case_name == "clm_hybrid";
  const bool training = case_name == "clm_full" || is_lora || is_hybrid || is_mlm || is_tok;
  if (!training && case_name != "forward" && case_name != "generate") {
    throw ConfigError("case", "expected clm_full|clm_lora|clm_dora|clm_qlora|clm_dp_lora|clm_hybrid|mlm|tok_full|tok_lora|"
                              "forward|generate, "
                              "found \"" +
                                  case_name + "\"");
  }
  if (is_encoder_case && config.model.is_decoder()) {
    throw ConfigError("case", case_name + " needs an encoder config (bert, minilm, megatron-bert-345m), not \"" +
                                  config.name + "\"");
  }
  if (!is_encoder_case && !config.model.is_decoder()) {
    throw ConfigError("case", "\"" + case_name + "\" needs a decoder config, not the encoder \"" + config.name + "\"");
  }

  torch::manual_seed(o.seed);
  const int64_t B = config.batch;
  const int64_t T = config.seq;
  const int64_t V = config.model.vocab_size;
  CaseResult r;
  r.training = training;

  // QLoRA: the blocks are quantized as they are built (ModelConfig::quantize), so a 7B shape never
  // exists in float32; everything else (embeddings, norms, lm_head) stays float32.
  models::ModelConfig model_config = config.model;
  if (is_qlora) model_config.quantize = models::QuantizeConfig{"nf4", true};
  const auto build_start = std::chrono::steady_clock::now();
  const auto kind = is_mlm ? models::TaskKind::MaskedLM
                   : is_tok ? models::TaskKind::TokenClassification
                            : models::TaskKind::CausalLM;
  auto model = models::make_task_model(model_config, kind, is_tok ? kTokenLabels : 2);
  if (case_name == "tok_lora") {  // LoRA on q/v plus the classifier in full, as a study LoRA cell
    peft::MethodConfig lora;
    lora.method = peft::Method::Lora;
    lora.lora = peft::LoraOptions(8, 16.0).targets(config.lora_targets);
    lora.train_patterns = models::task_head_patterns(*model);
    peft::apply(*model, lora);
  }
  if (is_lora) {
    peft::set_requires_grad(*model, false);
    peft::apply_lora(*model, peft::LoraOptions(8, 16.0).targets(config.lora_targets).use_dora(is_dora));
  }
  r.build_s = ms_since(build_start) / 1e3;
  r.rss_after_build_mb = peak_rss_mb();
  if (is_hybrid) {
    peft::MethodConfig hybrid;
    hybrid.method = peft::Method::Hybrid;
    hybrid.lora = peft::LoraOptions(8, 16.0).targets(config.lora_targets);
    hybrid.train_patterns = {"**.*norm.weight", "lm_head.weight"};
    // A pattern that matches nothing is refused, so biases are listed only where the model has them.
    if (config.model.attention_bias || config.model.mlp_bias) hybrid.train_patterns.push_back("**.bias");
    peft::apply(*model, hybrid);
  }
  model->to(o.device);  // parameters stay fp32; bf16 runs under autocast
  r.trainable_params = count_trainable(*model);

  const torch::Tensor ids = torch::randint(0, V, {B, T}, torch::kLong);
  data::Batch batch;
  batch.n_examples = B;
  batch["input_ids"] = ids;
  if (is_mlm) {
    torch::Tensor labels = torch::full({B, T}, data::kIgnoreIndex, torch::kLong);
    const torch::Tensor masked = torch::rand({B, T}) < kMaskFraction;
    labels.masked_scatter_(masked, ids.masked_select(masked));
    batch["labels"] = labels;
    batch.n_target_tokens = masked.sum().item<int64_t>();
    r.notes.push_back("mlm logits only at the " + std::to_string(batch.n_target_tokens) +
                      " masked positions (MaskedLMModel sparse_logits)");
  } else if (is_tok) {
    batch["labels"] = torch::randint(0, kTokenLabels, {B, T}, torch::kLong);
    batch["attention_mask"] = torch::ones({B, T}, torch::kLong);
    batch.n_target_tokens = B * T;
  } else {
    batch.n_target_tokens = B * (T - 1);
  }
  batch = batch.to(o.device);
  const bool autocast = o.device.is_cuda() && o.dtype == torch::kBFloat16;

  if (case_name == "generate") {
    auto* clm = dynamic_cast<models::CausalLMModelImpl*>(model.get());
    const torch::Tensor prompt = batch.at("input_ids").slice(1, 0, kPromptTokens).contiguous();
    models::GenerationOptions gen;
    gen.max_new_tokens = kNewTokens;
    r.tokens_per_step = B * kNewTokens;
    r.final_loss = std::numeric_limits<double>::quiet_NaN();
    r.times = time_steps(o.warmup, o.steps, [&] {
      compat::AutocastGuard guard(o.device.type(), o.dtype, autocast);
      models::generate(*clm, prompt, torch::Tensor(), gen);
    }, o.device);
    profile_once(o, r, "generate call", [&] {
      compat::AutocastGuard guard(o.device.type(), o.dtype, autocast);
      models::generate(*clm, prompt, torch::Tensor(), gen);
    });
    return r;
  }

  r.tokens_per_step = B * T;
  if (case_name == "forward") {
    auto* clm = dynamic_cast<models::CausalLMModelImpl*>(model.get());
    model->eval();
    models::ModelInputs inputs;
    inputs.input_ids = batch.at("input_ids");
    r.final_loss = std::numeric_limits<double>::quiet_NaN();
    r.times = time_steps(o.warmup, o.steps, [&] {
      c10::InferenceMode inference;
      compat::AutocastGuard guard(o.device.type(), o.dtype, autocast);
      clm->forward(inputs);
    }, o.device);
    r.notes.push_back("forward under c10::InferenceMode (the reference uses torch.no_grad)");
    profile_once(o, r, "forward", [&] {
      c10::InferenceMode inference;
      compat::AutocastGuard guard(o.device.type(), o.dtype, autocast);
      clm->forward(inputs);
    });
    return r;
  }

  model->train();
  train::TrainConfig tc;
  tc.lr = 1e-4;
  tc.weight_decay = 0.0;
  train::OptimizerSetup setup = train::build_optimizer(*model, tc);
  torch::optim::Optimizer& opt = *setup.optimizer;
  torch::Tensor last_loss;
  // One step: forward, set_to_none zeroing (the first backward then adopts the incoming gradient
  // buffers instead of adding into zeroed ones), backward, AdamW.
  auto forward = [&] {
    compat::AutocastGuard guard(o.device.type(), o.dtype, autocast);
    // The mean loss, as the reference's (transformers' loss): the summed loss over its targets.
    const auto out = model->run(batch);
    return out.loss_sum / static_cast<double>(std::max<int64_t>(1, out.n_target_tokens));
  };
  if (is_dp) {
    std::vector<torch::Tensor> trainable;
    for (const auto& p : model->parameters()) {
      if (p.requires_grad()) trainable.push_back(p);
    }
    train::DpEngine engine(*model, trainable);
    r.times = time_steps(o.warmup, o.steps, [&] {
      model->zero_grad(/*set_to_none=*/true);
      engine.begin_micro_batch(B);
      torch::Tensor loss;
      {
        compat::AutocastGuard guard(o.device.type(), o.dtype, autocast);
        loss = model->run(batch).loss_sum;
      }
      loss.backward();
      engine.clip_and_accumulate(/*max_grad_norm=*/1.0);
      engine.finish_step(/*noise_multiplier=*/1.0, /*max_grad_norm=*/1.0, static_cast<double>(B));
      opt.step();
      last_loss = loss.detach() / static_cast<double>(batch.n_target_tokens);
    }, o.device);
    r.final_loss = last_loss.item<double>();
    r.notes.push_back("DP-SGD step: per-example LoRA gradients, clip C = 1, noise sigma = 1, AdamW");
    return r;
  }
  r.times = time_steps(o.warmup, o.steps, [&] {
    torch::Tensor loss = forward();
    model->zero_grad(/*set_to_none=*/true);
    loss.backward();
    opt.step();
    last_loss = loss.detach();
  }, o.device);
  r.final_loss = last_loss.item<double>();
  r.notes.push_back("torch::optim::AdamW (LibTorch C++ has no fused or foreach AdamW)");

  if (o.breakdown) {
    using clock = std::chrono::steady_clock;
    std::vector<double> f, b, s;
    auto sync = [&] {
      if (o.device.is_cuda()) torch::cuda::synchronize(o.device.index());
    };
    for (int i = 0; i < o.steps; ++i) {
      sync();
      auto t0 = clock::now();
      torch::Tensor loss = forward();
      sync();
      f.push_back(ms_since(t0));
      t0 = clock::now();
      model->zero_grad(true);
      loss.backward();
      sync();
      b.push_back(ms_since(t0));
      t0 = clock::now();
      opt.step();
      sync();
      s.push_back(ms_since(t0));
    }
    r.breakdown_ms = {{"forward", median(f)}, {"backward", median(b)}, {"optimizer", median(s)}};
  }
  profile_once(o, r, "step", [&] {
    torch::Tensor loss = forward();
    model->zero_grad(true);
    loss.backward();
    opt.step();
  });
  return r;
}

}  // namespace biolm::bench
