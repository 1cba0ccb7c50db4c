// biolm-bench: times one libbiolm training / inference case and prints one JSON line.
//
//   biolm-bench --config tiny|small|bert|minilm --case clm_full|clm_lora|clm_dora|clm_qlora|clm_dp_lora|clm_hybrid|mlm|
//               tok_full|tok_lora|forward|generate
//               [--threads 2] [--steps N] [--warmup N] [--device cpu|cuda] [--dtype fp32|bf16]
//               [--breakdown]
//
// bench/run_bench.sh runs it and then bench/reference/torch_reference.py (plain PyTorch, the same
// models and steps) for every case, and prints the ratios.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <iostream>

#include "bench_config.h"
#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/core/host_memory.h"
#include "biolm/core/log.h"
#include "biolm/core/version.h"
#include "harness.h"

namespace biolm::bench {

namespace {

// A preset with the reference's shapes and no dropout (the reference trains without it).
models::ModelConfig shaped(const std::string& preset, int64_t d, int64_t layers, int64_t heads, int64_t kv_heads,
                           int64_t ffn, int64_t vocab) {
  models::ModelConfig m = models::preset(preset);
  m.hidden_size = d;
  m.n_layers = layers;
  m.n_heads = heads;
  m.n_kv_heads = kv_heads;
  m.ffn_size = ffn;
  m.vocab_size = vocab;
  m.hidden_dropout = 0.0;
  m.attention_dropout = 0.0;
  return m;
}

// The decoder of the reference: LLaMA-style, pre-RMSNorm, rotary, SwiGLU, untied head, no biases.
models::ModelConfig llama_style(int64_t d, int64_t layers, int64_t heads, int64_t kv_heads, int64_t ffn,
                                int64_t vocab, int64_t max_positions) {
  models::ModelConfig m = shaped("llama-7b", d, layers, heads, kv_heads, ffn, vocab);
  m.max_positions = max_positions;
  m.tie_embeddings = false;
  return m;
}

// The encoder of the reference: BERT-style, post-LN, GELU erf, learned positions (512), token types,
// biases, embedding LayerNorm, eps 1e-12, no pooler; the MLM head is tied.
models::ModelConfig bert_style(int64_t d, int64_t layers, int64_t heads, int64_t ffn, int64_t vocab) {
  models::ModelConfig m = shaped("bert-base", d, layers, heads, heads, ffn, vocab);
  m.pooler = false;
  m.tie_embeddings = true;
  return m;
}

}  // namespace

std::vector<std::string> bench_config_names() {
  return {"tiny", "small", "bert", "minilm", "gpt2-124m", "gpt2-350m", "megatron-bert-345m", "llama-1b", "llama-7b"};
}

BenchConfig bench_config(const std::string& name) {
  BenchConfig c;
  c.name = name;
  if (name == "tiny") {
    c.model = llama_style(128, 4, 4, 4, 512, 8000, 128);
    c.seq = 128;
    c.batch = 8;
  } else if (name == "small") {
    c.model = llama_style(256, 6, 8, 8, 1024, 16000, 256);
    c.seq = 256;
    c.batch = 4;
  } else if (name == "bert") {
    c.model = bert_style(256, 4, 4, 1024, 8000);
    c.seq = 128;
    c.batch = 8;
  } else if (name == "minilm") {  // all-MiniLM-L6-v2's shape, the study's NCBI-disease batch (16 x 64 pieces)
    c.model = bert_style(384, 6, 12, 1536, 30522);
    c.seq = 64;
    c.batch = 16;
  } else if (name == "gpt2-124m" || name == "gpt2-350m") {
    c.model = models::preset("gpt2");
    if (name == "gpt2-350m") {  // GPT-2 medium (HF gpt2-medium)
      c.model.hidden_size = 1024;
      c.model.n_layers = 24;
      c.model.n_heads = 16;
      c.model.n_kv_heads = 16;
      c.model.ffn_size = 4096;
    }
    c.model.hidden_dropout = 0.0;
    c.model.attention_dropout = 0.0;
    c.seq = 1024;
    c.batch = 8;
    c.cuda_only = true;
  } else if (name == "megatron-bert-345m") {
    c.model = models::preset("megatron-bert-345m");
    c.model.hidden_dropout = 0.0;
    c.model.attention_dropout = 0.0;
    c.model.pooler = false;
    c.model.tie_embeddings = true;
    c.seq = 512;
    c.batch = 16;
    c.cuda_only = true;
  } else if (name == "llama-1b") {
    // TinyLlama-1.1B shapes (d 2048, 22 layers, 32 heads, 4 KV heads, SwiGLU 5632, vocab 32000).
    c.model = llama_style(2048, 22, 32, 4, 5632, 32000, 2048);
    c.seq = 1024;
    c.batch = 8;
    c.cuda_only = true;
  } else if (name == "llama-7b") {
    // LLaMA-7B shapes (Touvron et al. 2023, Table 2: d 4096, 32 layers, 32 heads; SwiGLU 11008,
    // vocab 32000): the QLoRA memory benchmark, batch 1 x 512 tokens.
    c.model = llama_style(4096, 32, 32, 32, 11008, 32000, 4096);
    c.seq = 512;
    c.batch = 1;
    c.cuda_only = true;
  } else {
    std::string valid;
    for (const auto& n : bench_config_names()) valid += (valid.empty() ? "" : ", ") + n;
    throw ConfigError("config", "unknown bench config \"" + name + "\" (valid: " + valid + ")");
  }
  c.model.name = "bench-" + name;
  c.model.validate();
  return c;
}

double matmul_params(const BenchConfig& c, double mlm_fraction) {
  const auto& m = c.model;
  const double d = static_cast<double>(m.hidden_size);
  const double kv = static_cast<double>(m.n_kv_heads * m.head_dim());
  const double f = static_cast<double>(m.ffn_size);
  const double v = static_cast<double>(m.vocab_size);
  const double per_layer = 2 * d * d + 2 * d * kv + (m.gated_mlp() ? 3.0 : 2.0) * d * f;
  const double body = static_cast<double>(m.n_layers) * per_layer;
  if (m.is_decoder()) return body + d * v;
  return body + mlm_fraction * (d * d + d * v);  // MLM head: dense + vocab projection where evaluated
}

double flops_per_token(const BenchConfig& c, bool training, double mlm_fraction) {
  const double n = matmul_params(c, mlm_fraction);
  const double attn = static_cast<double>(c.model.n_layers * c.model.hidden_size * c.seq);
  return training ? 6 * n + 12 * attn : 2 * n + 4 * attn;
}

}  // namespace biolm::bench

namespace {

nlohmann::json optional_number(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

int run(int argc, char** argv) {
  using namespace biolm;
  using namespace biolm::bench;
  CLI::App app{"biolm-bench: time a libbiolm training or inference step; one JSON line per case"};
  std::string config_name = "tiny";
  std::string case_name = "clm_full";
  std::string device_spec = "cpu";
  std::string dtype_name = "fp32";
  int threads = 2;
  RunOptions opts;
  app.add_option("--config", config_name, "tiny|small|bert|gpt2-124m|gpt2-350m|megatron-bert-345m|llama-1b|llama-7b")
      ->capture_default_str();
  int64_t seq = 0, batch = 0;
  bool big_cpu = false, grad_ckpt = false;
  double dropout = 0.0;
  app.add_option("--seq", seq, "tokens per row (default: the config's)");
  app.add_option("--batch", batch, "rows per step (default: the config's)");
  app.add_flag("--big-cpu", big_cpu, "allow a CUDA-sized config on the CPU (memory benchmarks: llama-1b, llama-7b)");
  app.add_option("--dropout", dropout,
                 "hidden and attention dropout during training (default 0, as the reference; the study trains with 0.1)")
      ->check(CLI::Range(0.0, 0.9));
  app.add_flag("--grad-ckpt", grad_ckpt, "activation checkpointing: recompute each block in backward");
  app.add_option("--case", case_name, "clm_full|clm_lora|clm_dora|clm_qlora|clm_dp_lora|clm_hybrid|mlm|tok_full|tok_lora|forward|generate")->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads (CPU) and OpenBLAS threads")->capture_default_str();
  app.add_option("--steps", opts.steps, "timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup", opts.warmup, "untimed steps first")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--device", device_spec, "cpu|cuda|cuda:N")->capture_default_str();
  app.add_option("--dtype", dtype_name, "fp32|bf16 (bf16: autocast on CUDA)")->capture_default_str();
  app.add_option("--seed", opts.seed, "weights and data")->capture_default_str();
  app.add_flag("--breakdown", opts.breakdown, "also time forward / backward / optimizer separately");
  app.add_option("--profile", opts.profile_path,
                 "after timing, run one more step under the autograd profiler and write a chrome trace here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  log::set_level(log::parse_level("warn"));

  BenchConfig config = bench_config(config_name);
  if (seq > 0) config.seq = seq;
  if (batch > 0) config.batch = batch;
  if (grad_ckpt) config.model.gradient_checkpointing = true;
  config.model.hidden_dropout = dropout;
  config.model.attention_dropout = dropout;
  opts.device = core::parse_device(device_spec, "device");
  if (config.cuda_only && !opts.device.is_cuda() && !big_cpu) {
    throw ConfigError("config", "\"" + config_name + "\" is a CUDA preset (too big for a CPU benchmark); run it with "
                                "--device cuda, or pick tiny|small|bert");
  }
  if (dtype_name == "fp32") {
    opts.dtype = torch::kFloat;
  } else if (dtype_name == "bf16") {
    if (!opts.device.is_cuda()) throw ConfigError("dtype", "bf16 is benchmarked on CUDA only; use --dtype fp32 on CPU");
    opts.dtype = torch::kBFloat16;
  } else {
    throw ConfigError("dtype", "expected fp32|bf16, found \"" + dtype_name + "\"");
  }
  if (threads < 1) throw ConfigError("threads", "must be >= 1");
  torch::set_num_threads(threads);
  // As the biolm command does: freed activations stay in the heap (BIOLM_HOST_ALLOCATOR=system to compare).
  const biolm::core::HostAllocatorTuning host_memory = biolm::core::tune_host_allocator();
  const std::optional<int> blas_threads = set_openblas_threads(threads);
  if (opts.device.is_cuda()) {
    // TF32 for fp32 matmuls and convolutions (Ampere+), as the reference sets it on CUDA.
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }

  const CaseResult r = run_case(config, case_name, opts);

  const bool is_mlm = case_name == "mlm";
  const double fpt = case_name == "generate" ? 0.0 : flops_per_token(config, r.training, is_mlm ? 0.15 : 0.0);
  const double tokens_per_s = static_cast<double>(r.tokens_per_step) / (r.times.median_ms / 1e3);
  const double rss = peak_rss_mb();
  const std::optional<double> cuda_mb = peak_cuda_mb(opts.device);
  // The peak is measured after the case, so its buffers do not count in the case's memory.
  const bool cuda = opts.device.is_cuda();
  const double peak = measure_matmul_peak(opts.device, cuda ? torch::kBFloat16 : torch::kFloat, cuda ? 8192 : 1024, 10);

  nlohmann::json j;
  j["case"] = case_name;
  j["config"] = config_name;
  j["impl"] = "biolm";
  j["torch"] = biolm::torch_version();
  j["device"] = opts.device.str();
  j["dtype"] = dtype_name;
  j["threads"] = torch::get_num_threads();
  j["blas"] = mapped_blas_libraries();
  j["blas_config"] = openblas_config();
  j["host_allocator"] = host_memory.detail;
  j["blas_threads"] = blas_threads ? nlohmann::json(*blas_threads) : nlohmann::json(nullptr);
  j["tokens_per_s"] = tokens_per_s;
  j["step_ms_median"] = r.times.median_ms;
  j["step_ms_min"] = r.times.min_ms;
  j["step_ms_max"] = r.times.max_ms;
  j["steps"] = opts.steps;
  j["warmup"] = opts.warmup;
  j["peak_rss_mb"] = rss;
  j["seq"] = config.seq;
  j["batch"] = config.batch;
  j["grad_ckpt"] = config.model.gradient_checkpointing;
  j["dropout"] = dropout;
  j["build_s"] = r.build_s;
  j["rss_after_build_mb"] = r.rss_after_build_mb;
  j["peak_cuda_mb"] = optional_number(cuda_mb);
  if (case_name == "generate") {
    j["flops_per_token"] = nullptr;
    j["achieved_flops"] = nullptr;
    j["peak_fraction"] = nullptr;
  } else {
    const double achieved = fpt * tokens_per_s;
    j["flops_per_token"] = fpt;
    j["achieved_flops"] = achieved;
    j["peak_fraction"] = achieved / peak;
  }
  j["matmul_peak_flops"] = peak;
  j["trainable_params"] = r.trainable_params;
  j["final_loss"] = std::isfinite(r.final_loss) ? nlohmann::json(r.final_loss) : nlohmann::json(nullptr);
  if (!r.breakdown_ms.empty()) {
    nlohmann::json b = nlohmann::json::object();
    for (const auto& [k, v] : r.breakdown_ms) b[k] = v;
    j["breakdown_ms"] = b;
  }
  if (!r.notes.empty()) j["notes"] = r.notes;
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const biolm::ConfigError& e) {
    std::cerr << "biolm-bench: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "biolm-bench: error: " << e.what() << "\n";
    return 1;
  }
}
