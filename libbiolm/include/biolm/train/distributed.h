// biolm/train/distributed.h: data parallelism on c10d (Gloo on CPU, NCCL on CUDA builds).
//
// Processes are started by torchrun or `biolm launch -n N`, which set RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR and MASTER_PORT. Rank 0 hosts the TCPStore
// rendezvous. Each rank feeds its slice of every global batch (data/loader.h); dist::DataParallel
// (dist/zero.h) sums the gradients across ranks, replicated or ZeRO-sharded, and the trainer
// divides them by the global number of target tokens, so a step equals one process seeing the
// whole global batch (docs/distributed.md).
#pragma once

#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace biolm::train {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;  ///< processes on this node (LOCAL_WORLD_SIZE)
  int group_rank = 0;        ///< this node's index (GROUP_RANK, torchrun's node rank)
  /// torchrun (TORCHELASTIC_USE_AGENT_STORE=True) already serves its own TCPStore at MASTER_PORT;
  /// ours then listens at MASTER_PORT + 1 (a LibTorch 1.13 client cannot speak to the 2.x store).
  bool agent_store = false;
  int store_port() const { return agent_store ? master_port + 1 : master_port; }
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
  /// The group torchrun or `biolm launch` asked for through the environment (WORLD_SIZE > 1), or
  /// nullptr for a single process. Collectives that wait longer than `timeout` for a rank (dead
  /// or hung) throw Error.
  static std::shared_ptr<ProcessGroup> join_from_env(c10::Device device, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  int rank() const;
  int world_size() const;
  /// In-place sum over ranks. Any device: on an NCCL group a host tensor goes through the GPU.
  void allreduce_sum(torch::Tensor& tensor);
  /// In-place copy of root's tensor to every rank.
  void broadcast(torch::Tensor& tensor, int root = 0);
  void barrier();
  /// full (W·n elements, flat, contiguous) = the concatenation of every rank's `shard` (n elements).
  void allgather(const torch::Tensor& shard, torch::Tensor& full);
  /// Sum over ranks of each rank's `tensor`, written to `root`'s tensor; the other ranks' tensors
  /// are scratch afterwards (Gloo uses them). Asynchronous: returns a handle that wait() finishes.
  struct Pending {
    std::function<void()> wait;
  };
  Pending reduce_sum_async(torch::Tensor& tensor, int root);
  /// allreduce_sum(), asynchronous; `tensor` must be on the group's device.
  Pending allreduce_sum_async(torch::Tensor& tensor);
  /// broadcast(), asynchronous; `tensor` must be on the group's device.
  Pending broadcast_async(torch::Tensor& tensor, int root);

  /// Bytes handed to each kind of collective by this rank since creation (the payload, not the
  /// wire traffic: docs/distributed.md relates the two per algorithm).
  struct Traffic {
    int64_t allreduce = 0, reduce = 0, allgather = 0, broadcast = 0;
  };
  const Traffic& traffic() const;

 private:
  ProcessGroup();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Copies rank 0's parameters and buffers to every rank (start of training).
void broadcast_module(ProcessGroup& group, torch::nn::Module& module);

}  // namespace biolm::train
