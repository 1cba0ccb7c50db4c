// biolm/data/batch.h: what loaders produce and the trainer consumes.
//
// A Batch is a set of named tensors with agreed names, so task heads, loaders and the trainer
// meet without knowing each other:
//   input_ids (B,T) int64, attention_mask (B,T) int64 1 = real token, token_type_ids (B,T),
//   position_ids (B,T), segment_ids (B,T) (packed examples: attention stays within a segment),
//   labels (B,T) or (B) int64 with -100 = ignore, start_positions / end_positions (B),
//   scores (B) float (regression), choice_ids (B,K,T) (multiple choice), choice_mask (B,K) int64
//   (multiple choice with rows of fewer options than K: 0 = padding option).
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <map>
#include <optional>
#include <string>

namespace biolm::data {

/// The label value every loss ignores (as in PyTorch's cross_entropy default).
inline constexpr int64_t kIgnoreIndex = -100;

struct Batch {
  std::map<std::string, torch::Tensor> tensors;
  int64_t n_examples = 0;
  /// Positions that carry a loss (labels != -100); gradient accumulation normalises by the sum of
  /// this over all micro-batches of a step, not by the number of micro-batches.
  int64_t n_target_tokens = 0;

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  const torch::Tensor& at(const std::string& name) const;
  torch::Tensor& operator[](const std::string& name) { return tensors[name]; }
  /// Copy of every tensor on `device` (non_blocking where the source is pinned).
  Batch to(const torch::Device& device) const;
};

/// Anything that yields batches and can say where it is, so a resumed run sees exactly the
/// batches an unbroken one would (the position goes into every checkpoint).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  /// The next batch, or nullopt at the end of the epoch (call start_epoch to continue).
  virtual std::optional<Batch> next() = 0;
  virtual void start_epoch(int64_t epoch) = 0;
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
  /// Batches per epoch, if known.
  virtual std::optional<int64_t> batches_per_epoch() const { return std::nullopt; }
  /// True when state() is the same on every data-parallel rank (it counts global batches, as
  /// data::Loader): a checkpoint then resumes at another world size. False: each rank has its own.
  virtual bool global_position() const { return false; }
};

}  // namespace biolm::data
