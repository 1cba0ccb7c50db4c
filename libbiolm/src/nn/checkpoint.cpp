#include "biolm/nn/checkpoint.h"

#include <algorithm>

#include "biolm/core/compat.h"

#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/custom_function.h>

#include "biolm/core/error.h"

namespace biolm::nn {
namespace {

// The function and the generator states ride along in an IValue capsule (AutogradContext keeps
// only IValues).
struct CheckpointState : torch::CustomClassHolder {
  CheckpointFn fn;
  std::shared_ptr<BlockGather> gather;  ///< set: gather block `index` around both runs
  size_t index = 0;
  at::Tensor cpu_rng;
  at::Tensor cuda_rng;
  c10::Device cuda_device{c10::DeviceType::CPU};
};

at::Generator cuda_generator(const c10::Device& device) {
  return compat::cuda_default_generator(device.index() < 0 ? 0 : device.index());
}

struct RngFork {
  // Sets the saved states for the recomputation and puts the current ones back afterwards.
  explicit RngFork(const CheckpointState& s) : state(s) {
    auto cpu = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu_now = cpu.get_state();
    cpu.set_state(s.cpu_rng);
    if (s.cuda_rng.defined()) {
      auto g = cuda_generator(s.cuda_device);
      std::lock_guard<std::mutex> lock_cuda(g.mutex());
      cuda_now = g.get_state();
      g.set_state(s.cuda_rng);
    }
  }
  ~RngFork() {
    auto cpu = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(cpu_now);
    if (cuda_now.defined()) {
      auto g = cuda_generator(state.cuda_device);
      std::lock_guard<std::mutex> lock_cuda(g.mutex());
      g.set_state(cuda_now);
    }
  }
  const CheckpointState& state;
  at::Tensor cpu_now, cuda_now;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                c10::intrusive_ptr<CheckpointState> state, at::TensorList inputs) {
    std::vector<torch::Tensor> detached;
    for (const auto& t : inputs) detached.push_back(t.defined() ? t.detach() : t);
    std::vector<torch::Tensor> outputs;
    {
      torch::NoGradGuard no_grad;
      if (state->gather) state->gather->gather(state->index);
      outputs = state->fn(detached);
      if (state->gather) state->gather->release(state->index);
    }
    for (const auto& o : outputs) {
      BIOLM_CHECK(o.defined() && o.is_floating_point(), ShapeError, "checkpoint",
                  "every output must be a defined floating-point tensor");
    }
    ctx->save_for_backward(std::vector<torch::Tensor>(inputs.begin(), inputs.end()));
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return outputs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto holder = ctx->saved_data["state"].toCapsule();
    const auto& state = *static_cast<CheckpointState*>(holder.get());
    const auto saved = ctx->get_saved_variables();
    std::vector<torch::Tensor> inputs;
    for (const auto& t : saved) {
      inputs.push_back(t.defined() ? t.detach().requires_grad_(t.requires_grad()) : t);
    }
    std::vector<torch::Tensor> outputs;
    if (state.gather) state.gather->gather(state.index);
    {
      RngFork fork(state);
      torch::AutoGradMode grad_on(true);
      outputs = state.fn(inputs);
    }
    std::vector<torch::Tensor> roots, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    outputs.clear();  // the recomputed graph goes before the parameters do
    if (state.gather) {
      state.gather->gradients_ready(state.index);
      state.gather->release(state.index);
    }
    torch::autograd::variable_list result;
    result.push_back(torch::Tensor());  // the state argument
    for (const auto& t : inputs) result.push_back(t.defined() && t.requires_grad() ? t.grad() : torch::Tensor());
    return result;
  }
};

std::vector<torch::Tensor> checkpoint_impl(const CheckpointFn& fn, const std::vector<torch::Tensor>& inputs,
                                           const std::vector<torch::Tensor>& params,
                                           const std::shared_ptr<BlockGather>& gather, size_t index) {
  auto state = c10::make_intrusive<CheckpointState>();
  state->fn = fn;
  state->gather = gather;
  state->index = index;
  {
    auto cpu = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(cpu.mutex());
    state->cpu_rng = cpu.get_state();
  }
  for (const auto& t : inputs) {
    if (t.defined() && t.is_cuda()) {
      state->cuda_device = t.device();
      auto g = cuda_generator(t.device());
      std::lock_guard<std::mutex> lock(g.mutex());
      state->cuda_rng = g.get_state();
      break;
    }
  }
  const auto trains = [](const torch::Tensor& t) { return t.defined() && t.requires_grad(); };
  if (std::none_of(inputs.begin(), inputs.end(), trains) && std::any_of(params.begin(), params.end(), trains)) {
    // The anchor: an input that requires grad, so the outputs get this function as grad_fn and
    // the recomputation in backward reaches the parameters. fn never sees it (it gets `inputs`).
    const CheckpointFn fn_user = state->fn;
    const size_t n = inputs.size();
    state->fn = [fn_user, n](const std::vector<torch::Tensor>& xs) {
      return fn_user(std::vector<torch::Tensor>(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(n)));
    };
    std::vector<torch::Tensor> with_anchor = inputs;
    const auto device = inputs.empty() || !inputs.front().defined() ? torch::Device(torch::kCPU) : inputs.front().device();
    with_anchor.push_back(torch::zeros({}, torch::TensorOptions().device(device)).requires_grad_(true));
    return CheckpointFunction::apply(state, at::TensorList(with_anchor));
  }
  return CheckpointFunction::apply(state, at::TensorList(inputs));
}


}  // namespace

std::vector<torch::Tensor> checkpoint(const CheckpointFn& fn, const std::vector<torch::Tensor>& inputs,
                                      const std::vector<torch::Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return fn(inputs);
  return checkpoint_impl(fn, inputs, params, nullptr, 0);
}

std::vector<torch::Tensor> run_block(const std::shared_ptr<BlockGather>& gather, size_t index, const CheckpointFn& fn,
                                     const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& params,
                                     bool recompute) {
  if (torch::GradMode::is_enabled() && (gather || recompute)) return checkpoint_impl(fn, inputs, params, gather, index);
  if (!gather) return fn(inputs);
  gather->gather(index);
  auto outputs = fn(inputs);
  gather->release(index);
  return outputs;
}

}  // namespace biolm::nn
