#include "biolm/dist/zero.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <unordered_map>

#include "biolm/core/compat.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/train/distributed.h"

namespace biolm::dist {
namespace {

/// Elements of [a0, a1) inside [b0, b1).
int64_t overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) {
  return std::max<int64_t>(0, std::min(a1, b1) - std::max(a0, b0));
}

bool is_adamw(const torch::optim::Optimizer& optimizer) {
  return dynamic_cast<const torch::optim::AdamW*>(&optimizer) != nullptr;
}

std::vector<std::string> state_names(bool adamw) {
  return adamw ? std::vector<std::string>{"exp_avg", "exp_avg_sq"} : std::vector<std::string>{"momentum_buffer"};
}

/// The state tensor `which` (index into state_names) of the optimizer parameter `param`;
/// undefined when it has no state yet.
torch::Tensor state_field(const torch::optim::Optimizer& optimizer, const torch::Tensor& param, int which) {
  const auto& state = optimizer.state();
  const auto it = state.find(compat::optimizer_state_key(param));
  if (it == state.end()) return {};
  if (is_adamw(optimizer)) {
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    return which == 0 ? st.exp_avg() : st.exp_avg_sq();
  }
  return static_cast<const torch::optim::SGDParamState&>(*it->second).momentum_buffer();
}

int64_t state_step(const torch::optim::Optimizer& optimizer, const torch::Tensor& param) {
  const auto& state = optimizer.state();
  const auto it = state.find(compat::optimizer_state_key(param));
  if (it == state.end()) return 0;
  return is_adamw(optimizer) ? static_cast<const torch::optim::AdamWParamState&>(*it->second).step() : int64_t{1};
}

/// Replaces the state of `param` (step 0: none) with slices read for the flat range
/// [begin, begin + param.numel()).
void set_state(torch::optim::Optimizer& optimizer, const torch::Tensor& param, int64_t step, int64_t begin,
               const FlatReader& read, const std::string& where) {
  auto& state = optimizer.state();
  state.erase(compat::optimizer_state_key(param));
  if (step == 0) return;
  auto slice = [&](const std::string& key) {
    auto t = read(key, begin, param.numel());
    BIOLM_CHECK(t.defined() && t.numel() == param.numel(), CheckpointError, where, key,
                fmt::format("expected {} elements at flat offset {}", param.numel(), begin));
    return t.view_as(param).to(param.device()).clone();
  };
  if (is_adamw(optimizer)) {
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(step);
    st->exp_avg(slice("exp_avg"));
    st->exp_avg_sq(slice("exp_avg_sq"));
    state[compat::optimizer_state_key(param)] = std::move(st);
  } else {
    auto st = std::make_unique<torch::optim::SGDParamState>();
    st->momentum_buffer(slice("momentum_buffer"));
    state[compat::optimizer_state_key(param)] = std::move(st);
  }
}

/// A reader over a map of whole flat tensors (the consolidated optimizer.safetensors).
FlatReader map_reader(const std::map<std::string, torch::Tensor>& flat, int64_t total, bool adamw,
                      const std::string& where) {
  for (const auto& key : state_names(adamw)) {
    const auto it = flat.find(key);
    BIOLM_CHECK(it != flat.end(), CheckpointError, where, key,
                std::string("missing: the checkpoint's optimizer is not ") + (adamw ? "AdamW" : "SGD"));
    BIOLM_CHECK(it->second.numel() == total, CheckpointError, where, key,
                fmt::format("{} elements in the checkpoint, the trainable parameters have {}", it->second.numel(),
                            total));
  }
  return [&flat](const std::string& key, int64_t begin, int64_t numel) {
    return flat.at(key).reshape({-1}).narrow(0, begin, numel);
  };
}

std::vector<int64_t> map_steps(const std::map<std::string, torch::Tensor>& flat, size_t n, const std::string& where) {
  const auto it = flat.find("step");
  BIOLM_CHECK(it != flat.end(), CheckpointError, where, "step", "missing");
  BIOLM_CHECK(it->second.numel() == static_cast<int64_t>(n), CheckpointError, where, "step",
              fmt::format("{} entries in the checkpoint, the model has {} trainable parameters", it->second.numel(), n));
  const auto t = it->second.to(torch::kInt64).contiguous();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

}  // namespace

std::vector<FlatEntry> flat_layout(torch::nn::Module& model) {
  std::vector<FlatEntry> out;
  int64_t offset = 0;
  for (const auto& item : model.named_parameters(true)) {
    const auto& p = item.value();
    if (!p.requires_grad()) continue;
    out.push_back({item.key(), p.sizes().vec(), offset, p.numel()});
    offset += p.numel();
  }
  return out;
}

void load_flat_optimizer_state(torch::optim::Optimizer& optimizer, torch::nn::Module& model, const FlatReader& read,
                               const std::vector<int64_t>& steps, const std::string& where) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params;
  for (const auto& p : model.parameters(true)) {
    if (p.requires_grad()) params.push_back(p);
  }
  BIOLM_CHECK(steps.size() == params.size(), CheckpointError, where, "step",
              fmt::format("{} entries in the checkpoint, the model has {} trainable parameters", steps.size(),
                          params.size()));
  int64_t offset = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    set_state(optimizer, params[i], steps[i], offset, read, where);
    offset += params[i].numel();
  }
}

DataParallel::DataParallel(std::shared_ptr<train::ProcessGroup> group, torch::nn::Module& model,
                           const train::TrainConfig& config)
    : group_(std::move(group)),
      stage_(static_cast<ZeroStage>(config.zero)),
      bucket_numel_(std::max<int64_t>(1, config.bucket_mb * 1024 * 1024 / 4)) {
  BIOLM_CHECK(group_ != nullptr, Error, "dist::DataParallel: no process group");
  world_ = group_->world_size();
  rank_ = group_->rank();
  for (const auto& item : model.named_parameters(true)) {
    const auto& p = item.value();
    if (!p.requires_grad()) continue;  // frozen: replicated, never communicated
    BIOLM_CHECK(p.scalar_type() == torch::kFloat32, ConfigError, "train.zero",
                "trainable parameter '" + item.key() + "' is " + std::string(c10::toString(p.scalar_type())) +
                    ": data parallelism keeps fp32 trainable parameters (master weights) only");
    if (slots_.empty()) options_ = p.options();
    BIOLM_CHECK(p.device() == options_.device(), ConfigError, "train.device",
                "trainable parameter '" + item.key() + "' is on another device than the first");
    slots_.push_back({item.key(), p, p.sizes().vec(), total_, p.numel()});
    total_ += p.numel();
  }
  BIOLM_CHECK(!slots_.empty(), ConfigError, "peft.method", "the model has no trainable parameters");
  shard_ = (total_ + world_ - 1) / world_;
  torch::NoGradGuard no_grad;
  gathered_numel_ = peak_gathered_ = total_;
  build_buckets();
  if (stage_ == ZeroStage::Replicated) {
    for (size_t i = 0; i < slots_.size(); ++i) pieces_.push_back({i, slots_[i].offset, slots_[i].numel, slots_[i].param});
    register_hooks();
    return;
  }
  const int64_t lo = own_begin(), hi = lo + own_size();
  for (size_t i = 0; i < slots_.size(); ++i) {
    const auto& sl = slots_[i];
    const int64_t b = std::max(lo, sl.offset), e = std::min(hi, sl.offset + sl.numel);
    if (b >= e) continue;
    auto t = sl.param.detach().reshape({-1}).narrow(0, b - sl.offset, e - b).clone();
    t.set_requires_grad(true);  // a leaf the optimizer steps: the master copy of these elements
    pieces_.push_back({i, b, e - b, t});
  }
  BIOLM_CHECK(!pieces_.empty(), ConfigError, "train.zero",
              fmt::format("rank {} of {} owns no trainable element ({} in all): use fewer processes or train.zero: 0",
                          rank_, world_, total_));
  if (stage_ == ZeroStage::Parameters) {
    find_units(model, config);
    release_parameters();
    peak_gathered_ = 0;
  }
  if (!per_block()) register_hooks();
  log::info("dist: ZeRO-{} over {} ranks: {} trainable elements, {} per shard{}", static_cast<int>(stage_), world_,
            total_, shard_,
            per_block() ? fmt::format("; parameters gathered per block ({} blocks, root {} elements)", units_.size(),
                                      root_.numel)
                        : std::string());
}

DataParallel::~DataParallel() {
  for (auto* seq : sequences_) seq->set_block_gather(nullptr);
  for (const auto& [slot, handle] : hooks_) slots_[slot].param.remove_hook(handle);
}

void DataParallel::set_bucket_numel(int64_t n) {
  BIOLM_CHECK(n > 0 && !collecting_, Error, "dist::DataParallel::set_bucket_numel: n > 0, outside a step");
  bucket_numel_ = n;
  build_buckets();
}

void DataParallel::build_buckets() {
  buckets_.clear();
  // Bucket k holds [padded - (k+1)·B, padded - k·B): the end of the flat vector first, where the
  // gradients the backward pass produces first lie. Both reduction paths cut them so.
  for (int64_t e = world_ * shard_; e > 0; e -= bucket_numel_) {
    Bucket b;
    b.begin = std::max<int64_t>(0, e - bucket_numel_);
    b.end = e;
    for (const auto& sl : slots_) b.real += overlap(b.begin, b.end, sl.offset, sl.offset + sl.numel);
    buckets_.push_back(b);
  }
}

void DataParallel::register_hooks() {
  for (size_t i = 0; i < slots_.size(); ++i) {
    const unsigned h = slots_[i].param.register_hook([this, i](const torch::Tensor& grad) { on_gradient(i, grad); });
    hooks_.emplace_back(i, h);
  }
}

void DataParallel::begin_micro_batch(bool last) {
  if (!overlap_ || in_step_ || hooks_.empty()) return;
  collecting_ = overlapped_step_ = last;
  if (!last) return;
  torch::NoGradGuard no_grad;
  flat_ = torch::zeros({world_ * shard_}, options_);
  slot_in_.assign(slots_.size(), false);
  for (auto& b : buckets_) b.missing = b.real;
  next_launch_ = 0;
  bucket_pending_.clear();
}

void DataParallel::on_gradient(size_t slot, const torch::Tensor& grad) {
  if (!collecting_) return;
  BIOLM_CHECK(!slot_in_[slot], Error,
              "dist::DataParallel: parameter '" + slots_[slot].name +
                  "' received a second gradient in one backward pass after its bucket was filled (a parameter shared "
                  "between recomputed blocks); overlapped reduction cannot handle it");
  fill_slot(slot, grad);
  launch_ready();
}

void DataParallel::fill_slot(size_t slot, const torch::Tensor& grad) {
  torch::NoGradGuard no_grad;
  const auto& sl = slots_[slot];
  auto dst = flat_.narrow(0, sl.offset, sl.numel);
  const auto& acc = sl.param.grad();
  if (acc.defined() && grad.defined()) {
    torch::add_out(dst, acc.reshape({-1}), grad.reshape({-1}));
  } else if (acc.defined() || grad.defined()) {
    dst.copy_((acc.defined() ? acc : grad).reshape({-1}));
  }
  slot_in_[slot] = true;
  for (auto& b : buckets_) b.missing -= overlap(b.begin, b.end, sl.offset, sl.offset + sl.numel);
}

void DataParallel::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].missing == 0) launch_bucket(buckets_[next_launch_++]);
}

void DataParallel::launch_bucket(const Bucket& b) {
  if (stage_ == ZeroStage::Replicated || stage_ == ZeroStage::OptimizerState) {
    auto part = flat_.narrow(0, b.begin, b.end - b.begin);
    bucket_pending_.push_back(group_->allreduce_sum_async(part));
    return;
  }
  for_each_owner(b.begin, b.end, [&](int r, int64_t lo, int64_t hi) {
    auto part = flat_.narrow(0, lo, hi - lo);
    bucket_pending_.push_back(group_->reduce_sum_async(part, r));
  });
}

void DataParallel::launch_rest() {
  if (!collecting_) return;
  // Parameters without a gradient in the last backward on this rank (an empty slice, an unused
  // parameter): what they accumulated before, or zeros.
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slot_in_[i]) fill_slot(i, torch::Tensor());
  }
  collecting_ = false;
  launch_ready();
}

void DataParallel::wait_buckets() {
  for (auto& p : bucket_pending_) p.wait();
  bucket_pending_.clear();
}

void DataParallel::finish_buckets() {
  launch_rest();
  wait_buckets();
  overlapped_step_ = false;
}

// The nn::BlockGather of one block sequence: block index -> unit (none for a frozen block).
class DataParallel::Gather : public nn::BlockGather {
 public:
  Gather(DataParallel* dp, std::vector<std::optional<size_t>> units) : dp_(dp), units_(std::move(units)) {}
  void gather(size_t block) override { call(Event::Gather, block); }
  void release(size_t block) override { call(Event::Release, block); }
  void gradients_ready(size_t block) override { call(Event::Reduce, block); }

 private:
  void call(Event::Kind kind, size_t block) {
    BIOLM_CHECK(block < units_.size(), Error,
                fmt::format("dist::DataParallel: block {} of a sequence of {}", block, units_.size()));
    if (units_[block]) dp_->on_event({kind, *units_[block]});
  }
  DataParallel* dp_;
  std::vector<std::optional<size_t>> units_;
};

namespace {
std::vector<std::pair<int64_t, int64_t>> runs_of(const std::vector<size_t>& slots,
                                                 const std::function<std::pair<int64_t, int64_t>(size_t)>& range) {
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (size_t i : slots) {
    const auto [b, e] = range(i);
    if (!runs.empty() && runs.back().second == b) {
      runs.back().second = e;
    } else {
      runs.emplace_back(b, e);
    }
  }
  return runs;
}
}  // namespace

void DataParallel::find_units(torch::nn::Module& model, const train::TrainConfig& config) {
  if (config.zero3_unit != train::Zero3Unit::Block) return;
  std::vector<nn::BlockSequence*> seqs;
  if (auto* self = dynamic_cast<nn::BlockSequence*>(&model)) seqs.push_back(self);
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (auto* seq = dynamic_cast<nn::BlockSequence*>(m.get())) seqs.push_back(seq);
  }
  if (seqs.empty()) {
    log::info("dist: train.zero3_unit = block, but the model has no block sequence: gathering the whole set");
    return;
  }
  std::unordered_map<const void*, size_t> slot_of;
  for (size_t i = 0; i < slots_.size(); ++i) slot_of[slots_[i].param.unsafeGetTensorImpl()] = i;
  std::vector<std::optional<size_t>> unit_of_slot(slots_.size());
  const auto range = [this](size_t i) { return std::make_pair(slots_[i].offset, slots_[i].offset + slots_[i].numel); };
  std::vector<std::vector<std::optional<size_t>>> maps;
  for (auto* seq : seqs) {
    std::vector<std::optional<size_t>> map;
    for (const auto& block : seq->sharding_blocks()) {
      Unit u;
      for (const auto& p : block->parameters(/*recurse=*/true)) {
        const auto it = slot_of.find(p.unsafeGetTensorImpl());
        if (it == slot_of.end()) continue;  // frozen
        const size_t i = it->second;
        if (std::find(u.slots.begin(), u.slots.end(), i) != u.slots.end()) continue;
        BIOLM_CHECK(!unit_of_slot[i], ConfigError, "train.zero3_unit",
                    "parameter '" + slots_[i].name +
                        "' belongs to two blocks: gather per block needs each trainable parameter in one block "
                        "(train.zero3_unit: model gathers the whole set)");
        unit_of_slot[i] = units_.size();
        u.slots.push_back(i);
        u.numel += slots_[i].numel;
      }
      if (u.slots.empty()) {
        map.emplace_back();
        continue;
      }
      std::sort(u.slots.begin(), u.slots.end());
      u.runs = runs_of(u.slots, range);
      map.emplace_back(units_.size());
      units_.push_back(std::move(u));
    }
    maps.push_back(std::move(map));
  }
  if (units_.empty()) return;  // no block trains (only the head): nothing to gather per block
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (unit_of_slot[i]) continue;
    root_.slots.push_back(i);
    root_.numel += slots_[i].numel;
  }
  root_.runs = runs_of(root_.slots, range);
  for (size_t k = 0; k < seqs.size(); ++k) {
    seqs[k]->set_block_gather(std::make_shared<Gather>(this, maps[k]));
    sequences_.push_back(seqs[k]);
  }
  grad_seen_.assign(slots_.size(), false);
}

void DataParallel::note_gathered(int64_t delta) {
  gathered_numel_ += delta;
  peak_gathered_ = std::max(peak_gathered_, gathered_numel_);
}

void DataParallel::copy_own(int64_t lo, int64_t hi, torch::Tensor dst) const {
  for (const auto& pc : pieces_) {
    const int64_t b = std::max(lo, pc.begin), e = std::min(hi, pc.begin + pc.numel);
    if (b >= e) continue;
    dst.narrow(0, b - lo, e - b).copy_(pc.tensor.detach().reshape({-1}).narrow(0, b - pc.begin, e - b));
  }
}

void DataParallel::gather_unit(Unit& u) {
  if (u.gathered) return;
  torch::NoGradGuard no_grad;
  auto buffer = torch::empty({u.numel}, options_);
  std::vector<int64_t> run_pos;  // where each run starts in the buffer
  int64_t pos = 0;
  std::vector<train::ProcessGroup::Pending> pending;
  for (const auto& [a, b] : u.runs) {
    run_pos.push_back(pos);
    for_each_owner(a, b, [&, a = a](int r, int64_t lo, int64_t hi) {
      auto seg = buffer.narrow(0, pos + lo - a, hi - lo);
      if (r == rank_) copy_own(lo, hi, seg);
      pending.push_back(group_->broadcast_async(seg, r));  // the owner's part, to every rank
    });
    pos += b - a;
  }
  for (auto& p : pending) p.wait();
  size_t run = 0;
  for (size_t i : u.slots) {
    auto& sl = slots_[i];
    while (sl.offset >= u.runs[run].second) ++run;
    sl.param.set_data(buffer.narrow(0, run_pos[run] + sl.offset - u.runs[run].first, sl.numel).view(sl.shape));
  }
  u.gathered = true;
  note_gathered(u.numel);
}

void DataParallel::release_unit(Unit& u) {
  if (!u.gathered) return;
  torch::NoGradGuard no_grad;
  for (size_t i : u.slots) slots_[i].param.set_data(torch::empty({0}, options_));
  u.gathered = false;
  note_gathered(-u.numel);
}

void DataParallel::reduce_unit(const Unit& u) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (size_t i : u.slots) {
    auto& g = slots_[i].param.mutable_grad();
    if (g.defined()) grad_seen_[i] = true;
    parts.push_back(g.defined() ? g.reshape({-1}) : torch::zeros({slots_[i].numel}, options_));
  }
  if (parts.empty()) return;
  InFlight next;
  next.flat = torch::cat(parts);  // the runs, back to back
  for (size_t i : u.slots) slots_[i].param.mutable_grad().reset();
  finish_reduce();
  int64_t pos = 0;
  for (const auto& [a, b] : u.runs) {
    for_each_owner(a, b, [&, a = a](int r, int64_t lo, int64_t hi) {
      auto seg = next.flat.narrow(0, pos + lo - a, hi - lo);
      next.pending.push_back(group_->reduce_sum_async(seg, r));
      if (r == rank_) next.mine.emplace_back(seg, lo);
    });
    pos += b - a;
  }
  in_flight_ = std::move(next);
}

void DataParallel::finish_reduce() {
  if (!in_flight_) return;
  torch::NoGradGuard no_grad;
  for (auto& p : in_flight_->pending) p.wait();
  for (const auto& [seg, lo] : in_flight_->mine) shard_grad_.narrow(0, lo - own_begin(), seg.numel()).add_(seg);
  in_flight_.reset();
}

void DataParallel::on_event(const Event& e) {
  if (!in_step_ || gathered_) return;  // outside a per-block step (evaluation holds the whole set)
  events_.push_back(e);
  apply(e);
}

void DataParallel::apply(const Event& e) {
  auto& u = units_[e.unit];
  switch (e.kind) {
    case Event::Gather: gather_unit(u); break;
    case Event::Release: release_unit(u); break;
    case Event::Reduce: reduce_unit(u); break;  // on a replaying rank: zeros
  }
}

std::vector<DataParallel::Event> DataParallel::default_trace() const {
  std::vector<Event> t;
  for (size_t u = 0; u < units_.size(); ++u) {
    t.push_back({Event::Gather, u});
    t.push_back({Event::Release, u});
  }
  for (size_t u = units_.size(); u-- > 0;) {
    t.push_back({Event::Gather, u});
    t.push_back({Event::Reduce, u});
    t.push_back({Event::Release, u});
  }
  return t;
}

void DataParallel::begin_step() {
  if (stage_ != ZeroStage::Parameters) return;
  if (!per_block()) {
    gather_parameters();
    return;
  }
  if (gathered_) release_parameters();  // evaluation or a checkpoint gathered everything
  gather_unit(root_);
  shard_grad_ = torch::zeros({shard_}, options_);
  grad_seen_.assign(slots_.size(), false);
  events_.clear();
  in_step_ = true;
}

void DataParallel::micro_batch_done(bool forward_ran, bool backward_ran) {
  // The step's last micro-batch: every bucket not started yet starts now, before any other
  // collective of the step (the trainer's statistics all-reduce comes next on every rank).
  launch_rest();
  if (!in_step_) return;
  if (forward_ran && backward_ran) {
    if (!events_.empty()) last_trace_ = events_;
    events_.clear();
    return;
  }
  // What the ranks with data do, minus what this rank did: the whole trace, or its backward part
  // (from the gather before the first reduce).
  const auto trace = last_trace_.empty() ? default_trace() : last_trace_;
  size_t start = 0;
  if (forward_ran) {
    const auto first_reduce = std::find_if(trace.begin(), trace.end(), [](const Event& e) { return e.kind == Event::Reduce; });
    start = first_reduce == trace.begin() || first_reduce == trace.end()
                ? trace.size()
                : static_cast<size_t>(first_reduce - trace.begin()) - 1;
  }
  for (size_t k = start; k < trace.size(); ++k) apply(trace[k]);
  events_.clear();
}

void DataParallel::discard_step() {
  if (overlapped_step_) {  // the buckets already launched must finish on every rank
    finish_buckets();
    flat_ = torch::Tensor();
  }
  if (!in_step_) return;
  finish_reduce();
  for (auto& sl : slots_) sl.param.mutable_grad().reset();
  shard_grad_ = torch::Tensor();
  events_.clear();
  in_step_ = false;
}

int64_t DataParallel::own_begin() const { return stage_ == ZeroStage::Replicated ? 0 : rank_ * shard_; }
int64_t DataParallel::own_size() const { return stage_ == ZeroStage::Replicated ? total_ : shard_; }

train::OptimizerSetup DataParallel::build_optimizer(const train::TrainConfig& config,
                                                    const std::map<std::string, double>& lr_scales) const {
  std::vector<train::OptimizerParam> params;
  for (const auto& pc : pieces_) params.push_back({slots_[pc.slot].name, slots_[pc.slot].param, pc.tensor});
  if (stage_ == ZeroStage::Parameters) {
    // The released parameters are empty: decide decay by the recorded shape.
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].like = torch::empty(slots_[pieces_[i].slot].shape, torch::TensorOptions().device(torch::kMeta));
    }
  }
  return train::build_optimizer(params, config, lr_scales);
}

void DataParallel::release_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& sl : slots_) sl.param.set_data(torch::empty({0}, options_));
  gathered_ = false;
  root_.gathered = false;
  for (auto& u : units_) u.gathered = false;
  note_gathered(-gathered_numel_);
}

void DataParallel::gather_parameters() {
  if (stage_ != ZeroStage::Parameters || gathered_) return;
  torch::NoGradGuard no_grad;
  auto full = gather_flat([](const Piece& pc) { return pc.tensor.detach(); });
  // The parameters become views of one flat buffer (as FSDP's flat_param).
  for (auto& sl : slots_) sl.param.set_data(full.narrow(0, sl.offset, sl.numel).view(sl.shape));
  gathered_ = true;
  root_.gathered = false;
  for (auto& u : units_) u.gathered = false;
  note_gathered(total_ - gathered_numel_);
}

void DataParallel::parameters_loaded() {
  if (stage_ == ZeroStage::Replicated) return;
  BIOLM_CHECK(gathered_, Error, "dist::DataParallel::parameters_loaded: gather_parameters() first");
  torch::NoGradGuard no_grad;
  for (auto& pc : pieces_) {
    const auto& sl = slots_[pc.slot];
    pc.tensor.copy_(sl.param.detach().reshape({-1}).narrow(0, pc.begin - sl.offset, pc.numel));
  }
  if (stage_ == ZeroStage::Parameters) release_parameters();
}

torch::Tensor DataParallel::gather_flat(const std::function<torch::Tensor(const Piece&)>& get) {
  const int64_t lo = own_begin();
  auto mine = torch::zeros({own_size()}, options_);
  for (const auto& pc : pieces_) {
    const auto t = get(pc);
    if (t.defined()) mine.narrow(0, pc.begin - lo, pc.numel).copy_(t.reshape({-1}));
  }
  if (stage_ == ZeroStage::Replicated) return mine;
  auto full = torch::empty({world_ * shard_}, options_);
  group_->allgather(mine, full);
  return full.narrow(0, 0, total_);
}

std::vector<bool> DataParallel::gradient_defined_anywhere() {
  // A parameter without a gradient on every rank (unused in this step) must stay without one, as
  // in a single process (AdamW skips it); a rank whose slice was empty contributes zeros.
  std::vector<bool> local(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) local[i] = slots_[i].param.grad().defined();
  return any_rank(local);
}

std::vector<bool> DataParallel::any_rank(const std::vector<bool>& local) {
  auto flags = torch::zeros({static_cast<int64_t>(slots_.size())}, torch::kFloat32);
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (local[i]) flags[static_cast<int64_t>(i)] = 1.0f;
  }
  group_->allreduce_sum(flags);
  std::vector<bool> out(slots_.size());
  const auto* f = flags.data_ptr<float>();
  for (size_t i = 0; i < slots_.size(); ++i) out[i] = f[i] > 0;
  return out;
}

torch::Tensor DataParallel::flat_gradients() const {
  std::vector<torch::Tensor> parts;
  for (const auto& sl : slots_) {
    const auto& g = sl.param.grad();
    parts.push_back(g.defined() ? g.reshape({-1}) : torch::zeros({sl.numel}, options_));
  }
  const int64_t pad = world_ * shard_ - total_;
  if (pad > 0) parts.push_back(torch::zeros({pad}, options_));
  return torch::cat(parts);  // (W·s)
}

torch::Tensor DataParallel::step(torch::optim::Optimizer& optimizer, double grad_scale,
                                 const std::optional<double>& clip_norm) {
  torch::NoGradGuard no_grad;
  if (in_step_) {
    // Per-block ZeRO-3: the blocks' gradients are already on their owners; the root's go now.
    in_step_ = false;
    reduce_unit(root_);
    finish_reduce();
    const auto defined = any_rank(grad_seen_);
    auto shard = shard_grad_;
    shard_grad_ = torch::Tensor();
    return finish_step(optimizer, shard, defined, grad_scale, clip_norm);
  }
  const auto defined = gradient_defined_anywhere();
  if (overlapped_step_) {
    finish_buckets();  // reduced bucket by bucket during the backward pass
  } else {
    flat_ = flat_gradients();
    for (const auto& b : buckets_) launch_bucket(b);
    wait_buckets();
  }
  auto flat = std::exchange(flat_, torch::Tensor());
  for (auto& sl : slots_) sl.param.mutable_grad().reset();  // the full gradients are not kept

  torch::Tensor norm;
  if (stage_ == ZeroStage::Replicated) {
    std::vector<torch::Tensor> params;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (!defined[i]) continue;
      auto& sl = slots_[i];
      sl.param.mutable_grad() = flat.narrow(0, sl.offset, sl.numel).view(sl.shape).mul_(grad_scale);
      params.push_back(sl.param);
    }
    if (clip_norm) norm = train::clip_grad_norm(params, *clip_norm);
    optimizer.step();
    return norm;
  }

  return finish_step(optimizer, flat.narrow(0, own_begin(), shard_), defined, grad_scale, clip_norm);
}

torch::Tensor DataParallel::finish_step(torch::optim::Optimizer& optimizer, torch::Tensor shard,
                                        const std::vector<bool>& defined, double grad_scale,
                                        const std::optional<double>& clip_norm) {
  torch::Tensor norm;
  shard.mul_(grad_scale);
  if (clip_norm) {
    // Every element lives in exactly one shard (the padding is zero): the global squared norm is
    // the sum of the shards'.
    auto sq = shard.to(torch::kFloat64).pow(2).sum().reshape({1}).cpu();
    group_->allreduce_sum(sq);
    norm = sq.sqrt().reshape({}).to(torch::kFloat32).to(options_.device());
    const auto coef = torch::clamp(*clip_norm / (norm + 1e-6), c10::nullopt, 1.0);
    shard.mul_(coef);
  }
  for (auto& pc : pieces_) {
    if (defined[pc.slot]) {
      pc.tensor.mutable_grad() = shard.narrow(0, pc.begin - own_begin(), pc.numel);
    } else {
      pc.tensor.mutable_grad().reset();
    }
  }
  optimizer.step();
  for (auto& pc : pieces_) pc.tensor.mutable_grad().reset();
  if (stage_ == ZeroStage::Parameters) {
    release_parameters();
    return norm;
  }
  const auto full = gather_flat([](const Piece& pc) { return pc.tensor.detach(); });
  for (auto& sl : slots_) sl.param.view({-1}).copy_(full.narrow(0, sl.offset, sl.numel));
  return norm;
}

std::map<std::string, torch::Tensor> DataParallel::gather_optimizer_state(torch::optim::Optimizer& optimizer) {
  torch::NoGradGuard no_grad;
  const auto names = state_names(is_adamw(optimizer));
  std::map<std::string, torch::Tensor> out;
  for (size_t k = 0; k < names.size(); ++k) {
    out[names[k]] =
        gather_flat([&](const Piece& pc) { return state_field(optimizer, pc.tensor, static_cast<int>(k)); }).cpu().clone();
  }
  out["step"] = torch::tensor(optimizer_steps(optimizer), torch::kInt64);
  return out;
}

std::vector<int64_t> DataParallel::optimizer_steps(torch::optim::Optimizer& optimizer) {
  // Steps per parameter: the pieces of one parameter share it; the max over ranks fills it in.
  const auto n = static_cast<int64_t>(slots_.size());
  auto steps = torch::zeros({n}, torch::kInt64);
  for (const auto& pc : pieces_) steps[static_cast<int64_t>(pc.slot)] = state_step(optimizer, pc.tensor);
  if (stage_ != ZeroStage::Replicated) {
    auto all = torch::empty({world_ * n}, torch::kInt64);
    group_->allgather(steps, all);
    steps = std::get<0>(all.view({world_, n}).max(0)).contiguous();
  }
  return std::vector<int64_t>(steps.data_ptr<int64_t>(), steps.data_ptr<int64_t>() + n);
}

void DataParallel::load_optimizer_state(torch::optim::Optimizer& optimizer,
                                        const std::map<std::string, torch::Tensor>& flat, const std::string& where) {
  const auto read = map_reader(flat, total_, is_adamw(optimizer), where);
  load_optimizer_state(optimizer, read, map_steps(flat, slots_.size(), where), where);
}

void DataParallel::load_optimizer_state(torch::optim::Optimizer& optimizer, const FlatReader& read,
                                        const std::vector<int64_t>& steps, const std::string& where) {
  torch::NoGradGuard no_grad;
  BIOLM_CHECK(steps.size() == slots_.size(), CheckpointError, where, "step",
              fmt::format("{} entries in the checkpoint, the model has {} trainable parameters", steps.size(),
                          slots_.size()));
  for (const auto& pc : pieces_) set_state(optimizer, pc.tensor, steps[pc.slot], pc.begin, read, where);
}

std::pair<int64_t, int64_t> DataParallel::own_range() const {
  const int64_t lo = own_begin();
  return {std::min(lo, total_), std::min(lo + own_size(), total_)};
}

std::map<std::string, torch::Tensor> DataParallel::local_optimizer_state(torch::optim::Optimizer& optimizer) const {
  torch::NoGradGuard no_grad;
  const auto [lo, hi] = own_range();
  const auto names = state_names(is_adamw(optimizer));
  std::map<std::string, torch::Tensor> out;
  for (size_t k = 0; k < names.size(); ++k) {
    auto mine = torch::zeros({hi - lo}, options_.device(torch::kCPU));
    for (const auto& pc : pieces_) {
      const auto t = state_field(optimizer, pc.tensor, static_cast<int>(k));
      if (t.defined()) mine.narrow(0, pc.begin - lo, pc.numel).copy_(t.reshape({-1}));
    }
    out[names[k]] = mine;
  }
  return out;
}

torch::Tensor DataParallel::local_parameters() const {
  torch::NoGradGuard no_grad;
  const auto [lo, hi] = own_range();
  auto mine = torch::zeros({hi - lo}, options_.device(torch::kCPU));
  for (const auto& pc : pieces_) mine.narrow(0, pc.begin - lo, pc.numel).copy_(pc.tensor.detach().reshape({-1}));
  return mine;
}

void DataParallel::load_local_parameters(const FlatReader& read) {
  BIOLM_CHECK(stage_ == ZeroStage::Parameters && !gathered_, Error,
              "dist::DataParallel::load_local_parameters: only at stage 3 with the parameters released");
  torch::NoGradGuard no_grad;
  for (auto& pc : pieces_) pc.tensor.copy_(read("param", pc.begin, pc.numel).view_as(pc.tensor));
}

std::vector<FlatEntry> DataParallel::layout() const {
  std::vector<FlatEntry> out;
  for (const auto& sl : slots_) out.push_back({sl.name, sl.shape, sl.offset, sl.numel});
  return out;
}

ShardMemory DataParallel::memory(const torch::optim::Optimizer& optimizer) const {
  ShardMemory m;
  m.trainable_numel = total_;
  if (stage_ == ZeroStage::Parameters && !gathered_) {
    for (const auto& pc : pieces_) m.parameter_numel += pc.numel;
  } else {
    m.parameter_numel = total_;
  }
  m.optimizer_numel = train::optimizer_state_numel(optimizer);
  m.peak_parameter_numel = peak_gathered_;
  return m;
}

}  // namespace biolm::dist
