// Internal: the contents of a trainer checkpoint directory (format "biolm-checkpoint", version 1;
// the directory protocol is train/checkpoint.h, what the trainer saves is train/trainer.h):
//   model.safetensors   every parameter and defined buffer by name (adapter_only: the trainable ones)
//   optimizer.pt        the LibTorch optimizer archive (train.zero: 0, or a single process)
//   optimizer.safetensors  train.zero >= 1, checkpoint_format consolidated: flat state (dist/zero.h)
//   shards/             train.zero >= 1, checkpoint_format sharded: dist/sharded_checkpoint.h
//   rng.safetensors     RNG states as uint8 tensors "cpu", "cuda.<i>"
//   rank-<r>.safetensors  data parallel: rank r's RNG states + "state_json" (loader position, epoch)
//   trainer_state.json  step, epoch, loader, best metric, seed, config, DP accountant history
// Kept byte-for-byte: checkpoints written before this file existed load unchanged.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "biolm/core/seed.h"
#include "biolm/io/tensor_file.h"

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace biolm::train::detail {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kOptimizerFile = "optimizer.pt";
inline constexpr const char* kRngFile = "rng.safetensors";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";
/// "rank-00001.safetensors"
std::string rank_file(int rank);

torch::Tensor bytes_tensor(const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> tensor_bytes(const torch::Tensor& t);
io::TensorMap rng_tensors(const core::RngState& rng);
core::RngState rng_from_tensors(const io::TensorMap& map, const std::filesystem::path& file);

/// model.safetensors: every parameter and defined buffer, or (adapter_only) peft::adapter_state;
/// `exclude` names tensors kept elsewhere (ZeRO-3 shards, dist/sharded_checkpoint.h).
void write_model_state(const std::filesystem::path& file, torch::nn::Module& model, bool adapter_only,
                       const std::set<std::string>& exclude = {});
/// Copies model.safetensors into `model`; CheckpointError naming a missing or misshapen tensor.
/// Names in `exclude` are neither read nor required.
void read_model_state(const std::filesystem::path& file, torch::nn::Module& model, bool adapter_only,
                      const std::set<std::string>& exclude = {});
void write_optimizer_state(const std::filesystem::path& file, torch::optim::Optimizer& optimizer);
void read_optimizer_state(const std::filesystem::path& file, torch::optim::Optimizer& optimizer, c10::Device device);
/// A JSON file of the checkpoint; CheckpointError when missing or unparsable.
nlohmann::json read_checkpoint_json(const std::filesystem::path& path);

}  // namespace biolm::train::detail
