// biolm/data/loader.h: a resumable, shardable, prefetching BatchSource over any Dataset.
//
// Order: epoch e visits a permutation of [0, N) drawn from mix_seed(seed, e) (Fisher-Yates on
// std::mt19937_64, identical on every platform), or 0..N-1 without shuffling, cut into GLOBAL
// batches of batch_size rows whatever the world size (as Megatron's sampler). Rank r of W takes
// the contiguous slice [r·n/W, (r+1)·n/W) of each global batch of n rows, so the W ranks together
// see exactly the batches one process sees, and a data-parallel step (gradients summed over ranks,
// divided by the global target count) equals the single-process step: the weights do not depend
// on the world size (docs/distributed.md). A rank whose slice is empty (a last batch smaller than
// W) gets an empty Batch (n_examples 0, no tensors). Batch k of epoch e is a pure function of
// (seed, e, k, rank), so state() = {epoch, next batch} is enough to resume exactly, at any world
// size (the position is global); the collator gets a per-batch seed (for MLM masking) derived the
// same way (masks of a slice differ from the whole batch's: MLM is exact per world size only).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "biolm/data/batch.h"
#include "biolm/data/features.h"

namespace biolm::data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  /// Row i; must be safe to call from the loader's prefetch thread.
  virtual Features get(int64_t i) const = 0;
};

/// Rows held in memory (fine-tuning sets).
class VectorDataset : public Dataset {
 public:
  explicit VectorDataset(std::vector<Features> rows) : rows_(std::move(rows)) {}
  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  Features get(int64_t i) const override { return rows_.at(static_cast<size_t>(i)); }

 private:
  std::vector<Features> rows_;
};

/// Turns rows into a Batch; `seed` is unique per (run seed, epoch, batch, rank).
using Collator = std::function<Batch(std::vector<Features>&& rows, uint64_t seed)>;

struct LoaderOptions {
  int64_t batch_size = 8;
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t rank = 0;
  int64_t world_size = 1;
  bool drop_last = false;
  int64_t prefetch = 2;  ///< batches prepared ahead by the background thread; 0 = no thread
};

class Loader : public BatchSource {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, Collator collator, LoaderOptions opts);
  ~Loader() override;
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  std::optional<Batch> next() override;
  void start_epoch(int64_t epoch) override;
  /// {"epoch", "batch" (next batch index), "seed", "rank", "world_size", "batch_size", "n_samples"}
  nlohmann::json state() const override;
  /// Throws ConfigError when the state was saved with another seed/batch size/dataset size; another
  /// rank or world size is fine (the position counts global batches).
  void restore(const nlohmann::json& state) override;
  std::optional<int64_t> batches_per_epoch() const override;
  bool global_position() const override { return true; }

  /// Sample indices this rank visits in `epoch`, in order (its slices of the global batches).
  std::vector<int64_t> epoch_indices(int64_t epoch) const;
  int64_t epoch() const { return epoch_; }

 private:
  Batch make_batch(int64_t batch_index) const;
  /// The epoch's permutation of [0, N).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  /// [begin, end) positions, in an epoch order of n samples, of this rank's slice of global batch k.
  std::pair<int64_t, int64_t> slice(int64_t k, int64_t n) const;
  void stop();
  void launch();

  std::shared_ptr<const Dataset> dataset_;
  Collator collator_;
  LoaderOptions opts_;
  int64_t epoch_ = 0;
  int64_t next_batch_ = 0;  // index of the next batch next() returns
  std::vector<int64_t> order_;
  int64_t n_batches_ = 0;
  // prefetch
  std::thread worker_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  std::exception_ptr error_;
  bool stopping_ = false;
  bool running_ = false;
};

}  // namespace biolm::data
