// biolm/train/distributed.h: data parallelism on c10d (Gloo on CPU, NCCL on CUDA builds).
//
// Processes are started by torchrun or `biolm launch -n N`, which set RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Rank 0 hosts the TCPStore rendezvous. Each rank feeds
// its own shard of the data; after backward the gradients are summed across ranks in flat buckets
// (~bucket_mb MB each) and the trainer divides them by the global number of target tokens, so a
// step equals one process seeing the union of the ranks' micro-batches.
#pragma once

#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace biolm::train {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// From the torchrun variables; absent WORLD_SIZE means a single process. Malformed values are
  /// ConfigError("env.<NAME>").
  static DistEnv from_env();
  bool distributed() const { return world_size > 1; }
};

class ProcessGroup {
 public:
  /// Rendezvous through a TCPStore at master_addr:master_port (rank 0 serves it) and a Gloo group
  /// (CPU) or NCCL group (CUDA device, builds with USE_C10D_NCCL).
  static std::shared_ptr<ProcessGroup> create(const DistEnv& env, c10::Device device,
                                              std::chrono::milliseconds timeout = std::chrono::minutes(5));
  ~ProcessGroup();
  int rank() const;
  int world_size() const;
  /// In-place sum over ranks. Any device: on an NCCL group a host tensor goes through the GPU.
  void allreduce_sum(torch::Tensor& tensor);
  /// In-place copy of root's tensor to every rank.
  void broadcast(torch::Tensor& tensor, int root = 0);
  void barrier();

 private:
  ProcessGroup();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Sums the gradients of `params` (those with a defined grad; a parameter without grad on every
/// rank is skipped consistently because the list is the same on all ranks) in buckets of at most
/// bucket_bytes: flatten, allreduce, unflatten.
void allreduce_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& params, int64_t bucket_bytes);
/// Copies rank 0's parameters and buffers to every rank (start of training).
void broadcast_module(ProcessGroup& group, torch::nn::Module& module);

}  // namespace biolm::train
