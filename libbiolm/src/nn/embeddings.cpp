#include "biolm/nn/embeddings.h"

#include "biolm/core/error.h"
#include "biolm/nn/dropout.h"

namespace biolm::nn {

EmbeddingsImpl::EmbeddingsImpl(const EmbeddingsOptions& options_) : options(options_) { reset(); }

void EmbeddingsImpl::reset() {
  const int64_t C = options.hidden_size();
  tok = register_module("tok", torch::nn::Embedding(options.vocab_size(), C));
  if (options.max_positions() > 0) pos = register_module("pos", torch::nn::Embedding(options.max_positions(), C));
  if (options.type_vocab_size() > 0) type = register_module("type", torch::nn::Embedding(options.type_vocab_size(), C));
  if (options.norm()) norm = register_module("norm", Norm(NormOptions(C).kind(options.norm_kind()).eps(options.norm_eps())));
  reset_parameters();
}

void EmbeddingsImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto* e : {&tok, &pos, &type}) {
    if (!e->is_empty() && options.init_std() > 0) (*e)->weight.normal_(0.0, options.init_std());
  }
}

torch::Tensor EmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                      const torch::Tensor& token_type_ids, const torch::Tensor& inputs_embeds) {
  torch::Tensor h;
  if (inputs_embeds.defined()) {
    BIOLM_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == options.hidden_size(), ShapeError,
                "Embeddings", "inputs_embeds must be (B,T," + std::to_string(options.hidden_size()) + ")");
    h = inputs_embeds;
  } else {
    BIOLM_CHECK(input_ids.defined() && input_ids.dim() == 2, ShapeError, "Embeddings", "input_ids must be (B,T)");
    const auto lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
    BIOLM_CHECK(lo >= 0 && hi < options.vocab_size(), ShapeError, "Embeddings",
                "token id out of range [0, " + std::to_string(options.vocab_size()) + "): found " +
                    std::to_string(lo < 0 ? lo : hi));
    h = tok(input_ids);  // (B,T,C)
  }
  if (!pos.is_empty()) {
    BIOLM_CHECK(position_ids.defined(), ShapeError, "Embeddings", "position_ids are required with learned positions");
    const auto hi = position_ids.max().item<int64_t>();
    BIOLM_CHECK(hi < options.max_positions(), ShapeError, "Embeddings",
                "position " + std::to_string(hi) + " exceeds max_positions " + std::to_string(options.max_positions()));
    h = h + pos(position_ids);
  }
  if (!type.is_empty()) {
    if (token_type_ids.defined()) {
      const auto hi = token_type_ids.max().item<int64_t>();
      BIOLM_CHECK(token_type_ids.min().item<int64_t>() >= 0 && hi < options.type_vocab_size(), ShapeError,
                  "Embeddings", "token_type_ids must be in [0, " + std::to_string(options.type_vocab_size()) + ")");
      h = h + type(token_type_ids);
    } else {
      h = h + type->weight[0];  // all segment A
    }
  }
  if (!norm.is_empty()) h = norm(h);
  return nn::dropout(h, options.dropout(), is_training());
}

namespace {
// Module::parameters_ is protected; a pointer to it taken through a derived class is the
// standard-conforming way to reach it for one module we do not own the type of.
struct ParameterAccess : torch::nn::Module {
  static torch::OrderedDict<std::string, torch::Tensor>& of(torch::nn::Module& m) {
    auto member = &ParameterAccess::parameters_;
    return m.*member;
  }
};
}  // namespace

void tie_weight(LinearImpl& linear, const torch::Tensor& weight) {
  BIOLM_CHECK(weight.dim() == 2 && weight.size(0) == linear.options.out_features() &&
                  weight.size(1) == linear.options.in_features(),
              ShapeError, "Linear", "tied weight must be (out, in) = (" + std::to_string(linear.options.out_features()) +
                                        ", " + std::to_string(linear.options.in_features()) + ")");
  auto& params = ParameterAccess::of(linear);
  if (params.contains("weight")) params.erase("weight");
  linear.weight = weight;
}

}  // namespace biolm::nn
