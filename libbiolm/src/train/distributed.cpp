#include "biolm/train/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>

#include "biolm/core/compat.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"

namespace biolm::train {
namespace {

int env_int(const char* name, int fallback, int min_value) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  BIOLM_CHECK(end && *end == '\0' && x >= min_value && x <= 1 << 30, ConfigError, std::string("env.") + name,
              std::string("expected an integer >= ") + std::to_string(min_value) + ", found '" + v + "'");
  return static_cast<int>(x);
}

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1);
  e.rank = env_int("RANK", 0, 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port, 1);
  BIOLM_CHECK(e.master_port <= 65535, ConfigError, "env.MASTER_PORT", "must be <= 65535");
  BIOLM_CHECK(e.rank < e.world_size, ConfigError, "env.RANK",
              "rank " + std::to_string(e.rank) + " is not below WORLD_SIZE " + std::to_string(e.world_size));
  return e;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::C10dBackend> pg;
  int rank = 0;
  int world_size = 1;
  c10::Device device = c10::Device(c10::kCPU);
  // NCCL reduces device tensors only: small host tensors (the trainer's step statistics, gathered
  // checkpoint state) make a round trip through the group's device. Gloo takes them as they are.
  template <typename Op>
  void on_device(torch::Tensor& tensor, Op op) {
    if (!device.is_cuda() || tensor.device() == device) {
      std::vector<torch::Tensor> ts{tensor};
      op(ts);
      return;
    }
    std::vector<torch::Tensor> ts{tensor.to(device)};
    op(ts);
    tensor.copy_(ts[0]);
  }
};

ProcessGroup::ProcessGroup() : impl_(std::make_unique<Impl>()) {}
ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistEnv& env, c10::Device device,
                                                   std::chrono::milliseconds timeout) {
  std::shared_ptr<ProcessGroup> out(new ProcessGroup());
  auto& impl = *out->impl_;
  impl.rank = env.rank;
  impl.world_size = env.world_size;
  impl.device = device;
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(env.master_port);
  opts.isServer = env.rank == 0;
  opts.numWorkers = env.world_size;
  opts.waitWorkers = true;
  opts.timeout = timeout;
  try {
    impl.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    throw Error("distributed: rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) +
                " failed for rank " + std::to_string(env.rank) + ": " + e.what());
  }
  auto store = c10::make_intrusive<c10d::PrefixStore>("biolm", impl.store);
  if (device.is_cuda()) {
#ifdef USE_C10D_NCCL
    auto nopts = c10d::ProcessGroupNCCL::Options::create();
    impl.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, nopts);
#else
    throw ConfigError("train.device", "this LibTorch has no NCCL: data parallelism on CUDA is unavailable");
#endif
  } else {
#ifdef USE_C10D_GLOO
    auto gopts = c10d::ProcessGroupGloo::Options::create();
    gopts->timeout = timeout;
    gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
    impl.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, gopts);
#else
    throw ConfigError("train.device", "this LibTorch has no Gloo: data parallelism on CPU is unavailable");
#endif
  }
  log::info("distributed: rank {}/{} joined at {}:{}", env.rank, env.world_size, env.master_addr, env.master_port);
  return out;
}

int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::world_size() const { return impl_->world_size; }

void ProcessGroup::allreduce_sum(torch::Tensor& tensor) {
  impl_->on_device(tensor, [&](std::vector<torch::Tensor>& ts) { impl_->pg->allreduce(ts)->wait(); });
}

void ProcessGroup::broadcast(torch::Tensor& tensor, int root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  impl_->on_device(tensor, [&](std::vector<torch::Tensor>& ts) { impl_->pg->broadcast(ts, o)->wait(); });
}

void ProcessGroup::barrier() { impl_->pg->barrier()->wait(); }

void allreduce_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat_parts;
    flat_parts.reserve(bucket.size());
    for (const auto& g : bucket) flat_parts.push_back(g.reshape({-1}));
    auto flat = torch::cat(flat_parts);  // one contiguous buffer per bucket
    group.allreduce_sum(flat);
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    // A bucket holds one dtype and device; a change closes it.
    if (!bucket.empty() && (bucket.front().scalar_type() != g.scalar_type() || bucket.front().device() != g.device())) {
      flush();
    }
    bucket.push_back(g);
    bytes += g.numel() * static_cast<int64_t>(g.element_size());
    if (bytes >= bucket_bytes) flush();
  }
  flush();
}

void broadcast_module(ProcessGroup& group, torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters(true)) group.broadcast(p, 0);
  for (auto& b : module.buffers(true)) {
    if (b.defined()) group.broadcast(b, 0);
  }
}

}  // namespace biolm::train
