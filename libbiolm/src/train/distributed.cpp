#include "biolm/train/distributed.h"

#include <fmt/format.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

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

// The address of this host's interface that routes to `master` (a UDP connect sends nothing): Gloo
// binds its device there. Binding to the master's own address, as a single host may, fails on
// every other host of a multi-node job.
std::string local_address_towards(const std::string& master, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(master.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    throw ConfigError("env.MASTER_ADDR", "cannot resolve '" + master + "'");
  }
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  const bool ok = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  ::freeaddrinfo(res);
  if (fd >= 0) ::close(fd);
  if (!ok) throw ConfigError("env.MASTER_ADDR", "no route from this host to '" + master + "'");
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &local.sin_addr, buf, sizeof(buf));
  return buf;
}

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1);
  e.rank = env_int("RANK", 0, 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size, 1);
  e.group_rank = env_int("GROUP_RANK", 0, 0);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port, 1);
  if (const char* a = std::getenv("TORCHELASTIC_USE_AGENT_STORE"); a && std::string(a) == "True") e.agent_store = true;
  BIOLM_CHECK(e.store_port() <= 65535, ConfigError, "env.MASTER_PORT", "must be <= 65535");
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
  Traffic traffic;
  std::chrono::milliseconds timeout{0};
  // A collective that fails (a peer's connection closed: it died) or times out (a peer hung)
  // becomes one Error naming this rank and the limit, instead of a backtrace or a silent hang.
  void wait(const char* op, const c10::intrusive_ptr<c10d::Work>& work) const {
    try {
      work->wait();
    } catch (const c10::Error& e) {
      throw Error(fail_message(op, e.what_without_backtrace()));
    } catch (const std::exception& e) {
      throw Error(fail_message(op, e.what()));
    }
  }
  std::string fail_message(const char* op, const std::string& what) const {
    return std::string("distributed: ") + op + " failed on rank " + std::to_string(rank) + " of " +
           std::to_string(world_size) + ": a peer rank died or did not answer within train.dist_timeout_s = " +
           fmt::format("{:g}", static_cast<double>(timeout.count()) / 1000.0) + " s (" + what.substr(0, what.find('\n')) + ")";
  }
  // An asynchronous collective on `tensor` (on the group's device): counts its bytes, starts it
  // and returns the handle whose wait() finishes it (or throws the rank-naming error).
  template <typename Start>
  ProcessGroup::Pending start_async(const char* op, int64_t& bytes, torch::Tensor& tensor, Start start) {
    BIOLM_CHECK(tensor.device() == device, Error,
                std::string("ProcessGroup: asynchronous ") + op + " of a tensor that is not on the group's device");
    bytes += tensor.numel() * static_cast<int64_t>(tensor.element_size());
    std::vector<torch::Tensor> ts{tensor};
    auto work = start(ts);
    const Impl* self = this;
    return ProcessGroup::Pending{[self, work, op] { self->wait(op, work); }};
  }
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
  impl.timeout = timeout;
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(env.store_port());
  opts.isServer = env.rank == 0;
  opts.numWorkers = env.world_size;
  opts.waitWorkers = true;
  opts.timeout = timeout;
  try {
    impl.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    throw Error("distributed: rendezvous at " + env.master_addr + ":" + std::to_string(env.store_port()) +
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
    gopts->devices.push_back(
        c10d::ProcessGroupGloo::createDeviceForHostname(local_address_towards(env.master_addr, env.master_port)));
    impl.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, gopts);
#else
    throw ConfigError("train.device", "this LibTorch has no Gloo: data parallelism on CPU is unavailable");
#endif
  }
  log::info("distributed: rank {}/{} joined at {}:{}", env.rank, env.world_size, env.master_addr, env.master_port);
  return out;
}

std::shared_ptr<ProcessGroup> ProcessGroup::join_from_env(c10::Device device, std::chrono::milliseconds timeout) {
  const DistEnv env = DistEnv::from_env();
  if (!env.distributed()) return nullptr;
  log::set_rank(env.rank);
  log::info("distributed: rank {} of {} (node {}, local rank {} of {})", env.rank, env.world_size, env.group_rank,
            env.local_rank, env.local_world_size);
  return create(env, device, timeout);
}

int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::world_size() const { return impl_->world_size; }

const ProcessGroup::Traffic& ProcessGroup::traffic() const { return impl_->traffic; }

void ProcessGroup::allreduce_sum(torch::Tensor& tensor) {
  impl_->traffic.allreduce += tensor.numel() * static_cast<int64_t>(tensor.element_size());
  impl_->on_device(tensor, [&](std::vector<torch::Tensor>& ts) { impl_->wait("allreduce", impl_->pg->allreduce(ts)); });
}

void ProcessGroup::broadcast(torch::Tensor& tensor, int root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  impl_->traffic.broadcast += tensor.numel() * static_cast<int64_t>(tensor.element_size());
  impl_->on_device(tensor, [&](std::vector<torch::Tensor>& ts) { impl_->wait("broadcast", impl_->pg->broadcast(ts, o)); });
}

void ProcessGroup::barrier() { impl_->wait("barrier", impl_->pg->barrier()); }

void ProcessGroup::allgather(const torch::Tensor& shard, torch::Tensor& full) {
  const int64_t n = shard.numel();
  BIOLM_CHECK(full.numel() == n * impl_->world_size && full.is_contiguous() && shard.is_contiguous(), Error,
              "ProcessGroup::allgather: full must hold world_size x shard elements, contiguous");
  impl_->traffic.allgather += n * static_cast<int64_t>(shard.element_size());
  // NCCL gathers device tensors only: host tensors (checkpoint metadata) go through the device.
  const bool round_trip = impl_->device.is_cuda() && shard.device() != impl_->device;
  const torch::Tensor src = round_trip ? shard.to(impl_->device) : shard;
  torch::Tensor dst = round_trip ? torch::empty_like(full, full.options().device(impl_->device)) : full;
  std::vector<torch::Tensor> outs;
  for (int r = 0; r < impl_->world_size; ++r) outs.push_back(dst.view({-1}).narrow(0, r * n, n));
  std::vector<std::vector<torch::Tensor>> out_lists{outs};
  std::vector<torch::Tensor> in{src.view({-1})};
  impl_->wait("allgather", impl_->pg->allgather(out_lists, in));
  if (round_trip) full.copy_(dst);
}

ProcessGroup::Pending ProcessGroup::reduce_sum_async(torch::Tensor& tensor, int root) {
  c10d::ReduceOptions o;
  o.rootRank = root;
  return impl_->start_async("reduce", impl_->traffic.reduce, tensor, [&](std::vector<torch::Tensor>& ts) {
    return impl_->pg->reduce(ts, o);
  });
}

ProcessGroup::Pending ProcessGroup::allreduce_sum_async(torch::Tensor& tensor) {
  return impl_->start_async("allreduce", impl_->traffic.allreduce, tensor,
                            [&](std::vector<torch::Tensor>& ts) { return impl_->pg->allreduce(ts); });
}

ProcessGroup::Pending ProcessGroup::broadcast_async(torch::Tensor& tensor, int root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  return impl_->start_async("broadcast", impl_->traffic.broadcast, tensor, [&](std::vector<torch::Tensor>& ts) {
    return impl_->pg->broadcast(ts, o);
  });
}

void broadcast_module(ProcessGroup& group, torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters(true)) group.broadcast(p, 0);
  for (auto& b : module.buffers(true)) {
    if (b.defined()) group.broadcast(b, 0);
  }
}

}  // namespace biolm::train
