// bench/bench_config.h: the benchmark configurations and what a case run returns.
//
// tiny / small / bert mirror bench/reference/torch_reference.py exactly (CONFIGS there); the
// CUDA presets are accepted only with --device cuda.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "biolm/models/config.h"
#include "harness.h"

namespace biolm::bench {

struct BenchConfig {
  std::string name;
  models::ModelConfig model;
  int64_t seq = 0;    ///< T
  int64_t batch = 0;  ///< B
  bool cuda_only = false;
  /// LoRA targets of clm_lora and clm_hybrid (q and v by default).
  std::vector<std::string> lora_targets = {"**.q_proj", "**.v_proj"};
};

/// "tiny", "small", "bert" (CPU and CUDA); "gpt2-124m", "gpt2-350m", "megatron-bert-345m",
/// "llama-1b", "llama-7b" (CUDA, or CPU with --big-cpu: the memory benchmarks of docs/memory.md).
/// ConfigError("config") otherwise.
BenchConfig bench_config(const std::string& name);
std::vector<std::string> bench_config_names();

/// Parameters that take part in a matmul per token (projections and the vocab projection), the N
/// of the PaLM-style formula; the MLM vocab projection is counted at the masked fraction only.
double matmul_params(const BenchConfig& c, double mlm_fraction);
/// Model FLOPs per token: training 6 N + 12 L C T, forward 2 N + 4 L C T (PaLM, Chowdhery et al.
/// 2022, App. B), the same formula as the reference.
double flops_per_token(const BenchConfig& c, bool training, double mlm_fraction);

struct RunOptions {
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;  ///< compute dtype: fp32, or bf16 autocast on CUDA
  int warmup = 3;
  int steps = 10;
  uint64_t seed = 0;
  bool breakdown = false;  ///< also time forward, backward and optimizer separately
  std::string profile_path;  ///< when set: one extra step under the autograd profiler, chrome trace here
};

struct CaseResult {
  StepTimes times;
  int64_t tokens_per_step = 0;  ///< B*T for steps, B*new tokens for generation
  int64_t trainable_params = 0;
  double final_loss = 0.0;      ///< read once, after the timed loop (NaN for inference)
  bool training = false;
  /// forward / backward / optimizer medians (ms) with --breakdown, else empty.
  std::vector<std::pair<std::string, double>> breakdown_ms;
  std::vector<std::string> notes;  ///< what this run did that a reader should know
  double build_s = 0.0;             ///< seconds to build the model (random init, quantization, adapters)
  double rss_after_build_mb = 0.0;  ///< peak RSS once the model is built, before the first step
};

/// Builds the model for `case_name` (clm_full, clm_lora, clm_hybrid, mlm, forward, generate), times it.
CaseResult run_case(const BenchConfig& config, const std::string& case_name, const RunOptions& options);

}  // namespace biolm::bench
