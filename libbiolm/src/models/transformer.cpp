#include "biolm/models/transformer.h"

#include <unordered_set>

#include "biolm/core/error.h"
#include "biolm/core/host_memory.h"
#include "biolm/nn/checkpoint.h"
#include "biolm/nn/rotary.h"
#include "biolm/quant/linear.h"

namespace biolm::models {

nn::BlockOptions block_options(const ModelConfig& c, int64_t layer) {
  auto attention = nn::AttentionOptions(c.hidden_size, c.n_heads)
                       .n_kv_heads(c.n_kv_heads)
                       .bias(c.attention_bias)
                       .dropout(c.attention_dropout)
                       .rotary(c.positions == PositionKind::Rotary)
                       .fused(c.fused_attention)
                       .init_std(c.init_std);
  auto mlp = nn::MlpOptions(c.hidden_size, c.ffn_size).activation(c.activation).bias(c.mlp_bias).init_std(c.init_std);
  auto options = nn::BlockOptions(attention, mlp)
                     .norm_kind(c.norm)
                     .norm_eps(c.norm_eps)
                     .norm_placement(c.norm_placement)
                     .dropout(c.hidden_dropout);
  if (c.is_moe_layer(layer)) {
    options.moe(nn::MoeOptions(c.hidden_size, c.ffn_size, c.moe.n_experts, c.moe.top_k)
                    .activation(c.activation)
                    .bias(c.mlp_bias)
                    .normalize_top_k(c.moe.normalize_top_k)
                    .init_std(c.init_std));
  }
  return options;
}

TransformerImpl::TransformerImpl(const ModelConfig& config) : config_(config) {
  config_.validate();
  const auto& c = config_;
  embeddings = register_module(
      "embeddings", nn::Embeddings(nn::EmbeddingsOptions(c.vocab_size, c.hidden_size)
                                       .max_positions(c.positions == PositionKind::Learned ? c.max_positions : 0)
                                       .type_vocab_size(c.type_vocab_size)
                                       .norm(c.embedding_norm)
                                       .norm_kind(c.norm)
                                       .norm_eps(c.norm_eps)
                                       .dropout(c.hidden_dropout)
                                       .init_std(c.init_std)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < c.n_layers; ++l) {
    blocks_.emplace_back(block_options(c, l));
    // QLoRA: each block's projections are quantized as soon as it exists, so building a model of
    // any depth holds at most one block in float32 (a 7B shape: 0.8 GB, not 27 GB).
    if (c.quantize) {
      quant::quantize_linears(*blocks_.back(), *quant::parse_quant_type(c.quantize->type), {}, c.quantize->double_quant);
      core::release_free_host_memory();  // the block's float32 weights, freed, leave the process
    }
    layers->push_back(blocks_.back());
  }
  if (c.final_norm) {
    final_norm = register_module("final_norm", nn::Norm(nn::NormOptions(c.hidden_size).kind(c.norm).eps(c.norm_eps)));
  }
}

torch::Tensor TransformerImpl::default_position_ids(const ModelInputs& in, int64_t B, int64_t T) const {
  const auto device = in.input_ids.defined() ? in.input_ids.device() : in.inputs_embeds.device();
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  if (in.segment_ids.defined()) {
    // Position = t - (first index of t's segment); a segment starts where the id changes.
    const auto s = in.segment_ids.to(device);
    const auto t = torch::arange(T, long_opts).expand({B, T});
    auto change = torch::ones({B, T}, long_opts.dtype(torch::kBool));
    if (T > 1) change.narrow(1, 1, T - 1).copy_(s.narrow(1, 1, T - 1) != s.narrow(1, 0, T - 1));
    const auto start = std::get<0>(torch::cummax(torch::where(change, t, torch::zeros_like(t)), 1));
    return t - start;
  }
  const int64_t past = in.past != nullptr ? in.past->length() : 0;
  // Decoders count real tokens, so a left-padded prompt keeps the positions it has alone (what
  // transformers' generate() passes as position_ids). Encoders number every slot 0..T-1 as
  // BertEmbeddings does whatever the mask: padded rows then equal transformers' too.
  if (in.attention_mask.defined() && causal()) {
    const auto pos = (in.attention_mask.to(device).to(torch::kLong).cumsum(1) - 1).clamp_min(0);  // (B,past+T)
    return pos.narrow(1, pos.size(1) - T, T);
  }
  return torch::arange(past, past + T, long_opts).expand({B, T});
}

namespace {

/// Where the rows of ModelInputs::output_positions sit: b and t (N) always; with a sparse last
/// block also each row's slot among its batch element's rows and by_slot (B,M), the position held
/// by each slot (M = the most rows of one batch element).
struct RowLayout {
  torch::Tensor b, t, slot, by_slot;
};

RowLayout row_layout(const torch::Tensor& output_positions, int64_t B, int64_t T, bool sparse) {
  BIOLM_CHECK(output_positions.dim() == 2 && output_positions.size(1) == 2, ShapeError, "Transformer",
              "output_positions must be (N,2)");
  const auto pos = output_positions.to(torch::kLong);
  RowLayout r{pos.select(1, 0), pos.select(1, 1), {}, {}};
  const int64_t N = pos.size(0);
  if (N == 0) return r;
  const auto in_range = (pos.min() >= 0).logical_and(r.b.max() < B).logical_and(r.t.max() < T);
  const auto grouped = N < 2 ? torch::ones({}, pos.options().dtype(torch::kBool))
                             : (r.b.narrow(0, 1, N - 1) >= r.b.narrow(0, 0, N - 1)).all();
  const auto counts = sparse ? torch::bincount(r.b.clamp(0, B - 1), /*weights=*/{}, B) : torch::Tensor();
  // One host read: whether the rows are valid and grouped, and the padded row count.
  const auto host = torch::stack({in_range.to(torch::kLong), grouped.to(torch::kLong),
                                  sparse ? counts.max() : torch::zeros({}, pos.options())})
                        .cpu();
  BIOLM_CHECK(host[0].item<int64_t>() == 1, ShapeError, "Transformer",
              "output_positions out of range: batch must be in [0," + std::to_string(B) + "), position in [0," +
                  std::to_string(T) + ")");
  BIOLM_CHECK(host[1].item<int64_t>() == 1, ShapeError, "Transformer",
              "output_positions must be grouped by batch row in ascending order (as nonzero() returns them)");
  if (!sparse) return r;
  const auto starts = counts.cumsum(0) - counts;  // first row of each batch element
  r.slot = torch::arange(N, pos.options()) - starts.index_select(0, r.b);
  r.by_slot = torch::zeros({B, host[2].item<int64_t>()}, pos.options());
  r.by_slot.index_put_({r.b, r.slot}, r.t);
  return r;
}

}  // namespace

BodyOutput TransformerImpl::forward(const ModelInputs& in) {
  const auto& c = config_;
  const bool embeds = in.inputs_embeds.defined();
  BIOLM_CHECK(embeds || (in.input_ids.defined() && in.input_ids.dim() == 2), ShapeError, "Transformer",
              "need input_ids (B,T) or inputs_embeds (B,T,C)");
  const int64_t B = embeds ? in.inputs_embeds.size(0) : in.input_ids.size(0);
  const int64_t T = embeds ? in.inputs_embeds.size(1) : in.input_ids.size(1);
  const auto device = embeds ? in.inputs_embeds.device() : in.input_ids.device();
  const bool has_past = in.past != nullptr && !in.past->empty();
  BIOLM_CHECK(!has_past || causal(), ShapeError, "Encoder", "a KV cache is only meaningful for decoders");
  BIOLM_CHECK(!has_past || static_cast<int64_t>(in.past->layers.size()) == c.n_layers, ShapeError, "Transformer",
              "the KV cache has " + std::to_string(in.past->layers.size()) + " layers, the model " +
                  std::to_string(c.n_layers));
  const int64_t past = has_past ? in.past->length() : 0;
  for (const auto* t : {&in.token_type_ids, &in.position_ids, &in.segment_ids}) {
    BIOLM_CHECK(!t->defined() || (t->dim() == 2 && t->size(0) == B && t->size(1) == T), ShapeError, "Transformer",
                "token_type_ids, position_ids and segment_ids must be (B,T) = (" + std::to_string(B) + "," +
                    std::to_string(T) + ")");
  }
  const auto position_ids = in.position_ids.defined() ? in.position_ids.to(device) : default_position_ids(in, B, T);

  auto h = embeddings(in.input_ids, position_ids, in.token_type_ids, in.inputs_embeds);  // (B,T,C)
  nn::AttentionContext ctx;
  // Mistral's window hides keys only once the sequence (cache included) is longer than it.
  const bool windowed = c.sliding_window && past + T > *c.sliding_window;
  if (windowed) {
    ctx.mask = nn::make_attention_mask(B, T, past, causal(), in.attention_mask, in.segment_ids, device, c.sliding_window);
  } else if (past == 0 && !in.attention_mask.defined() && !in.segment_ids.defined()) {
    // Nothing to hide but the future: no mask tensor, the attention kernel applies causality itself.
    ctx.is_causal = causal();
  } else if (T == 1 && !in.attention_mask.defined() && !in.segment_ids.defined()) {
    // One new token after an unpadded cache sees every key: nothing to mask (decoding steps).
  } else {
    ctx.mask = nn::make_attention_mask(B, T, past, causal(), in.attention_mask, in.segment_ids, device);
  }
  if (c.positions == PositionKind::Rotary) {
    std::tie(ctx.cos, ctx.sin) = nn::rotary_cos_sin(position_ids, c.head_dim(), c.rope_theta, h.scalar_type(), c.rope_scaling);
  }
  ctx.use_cache = in.use_cache;
  // Padding is left out of the MoE balance statistics: the last T columns of the mask.
  torch::Tensor token_mask;
  if (in.attention_mask.defined()) token_mask = in.attention_mask.narrow(1, in.attention_mask.size(1) - T, T).to(device);

  BodyOutput out;
  auto aux = torch::zeros({}, h.options().dtype(torch::kFloat));
  int64_t n_moe = 0;
  const bool recompute = c.gradient_checkpointing && is_training() && !in.use_cache && !has_past &&
                         torch::GradMode::is_enabled();
  BIOLM_CHECK(!gather_ || !torch::GradMode::is_enabled() || (!in.use_cache && !has_past), ConfigError, "train.zero",
              "ZeRO-3 per-block gathering trains without a KV cache");
  const bool wrapped = recompute || (gather_ && !in.use_cache);  // through nn::run_block
  // Output rows only: where each requested row sits, and whether the last block runs at them alone.
  BIOLM_CHECK(!in.output_positions.defined() || !in.use_cache, ShapeError, "Transformer",
              "output_positions cannot be combined with use_cache");
  const RowLayout rows = in.output_positions.defined()
                             ? row_layout(in.output_positions.to(device), B, T,
                                          /*sparse=*/!causal() && blocks_.back()->moe.is_empty())
                             : RowLayout{};
  const bool rows_in_last_block = rows.by_slot.defined();
  const int64_t full_layers = rows_in_last_block ? c.n_layers - 1 : c.n_layers;
  for (int64_t l = 0; l < full_layers; ++l) {
    auto& block = blocks_[static_cast<size_t>(l)];
    ctx.past = has_past ? &in.past->layers[static_cast<size_t>(l)] : nullptr;
    if (wrapped) {
      const auto block_ctx = ctx;
      auto fn = [block, block_ctx, token_mask](const std::vector<torch::Tensor>& xs) mutable {
        auto r = block->forward(xs[0], block_ctx, token_mask);
        return std::vector<torch::Tensor>{r.hidden, r.aux_loss};
      };
      auto r = nn::run_block(gather_, static_cast<size_t>(l), fn, {h}, block->parameters(), recompute);
      h = r[0];
      if (!block->moe.is_empty()) aux = aux + r[1];
    } else {
      auto r = block->forward(h, ctx, token_mask);
      h = r.hidden;
      if (!block->moe.is_empty()) aux = aux + r.aux_loss;
      if (in.use_cache) out.cache.layers.push_back(r.present);
    }
    if (!block->moe.is_empty()) ++n_moe;
  }
  if (rows_in_last_block) {
    // The last block at the requested rows: (B,M,C) gathered by slot (unused slots read position 0
    // and are dropped below); the mask and rotary angles follow the query rows.
    auto& block = blocks_.back();
    const auto& row_pos = rows.by_slot;
    const int64_t M = row_pos.size(1), C = h.size(2);
    nn::AttentionContext rows_ctx = ctx;
    rows_ctx.past = nullptr;
    if (ctx.mask.defined()) {
      const auto m = ctx.mask.expand({B, 1, T, ctx.mask.size(3)});
      rows_ctx.mask = m.gather(2, row_pos.view({B, 1, M, 1}).expand({B, 1, M, m.size(3)}));
    }
    if (ctx.cos.defined()) {
      const auto idx = row_pos.unsqueeze(-1).expand({B, M, ctx.cos.size(2)});
      rows_ctx.q_cos = ctx.cos.gather(1, idx);
      rows_ctx.q_sin = ctx.sin.gather(1, idx);
    }
    const auto rows_of = [row_pos, B, M, C](const torch::Tensor& x) {
      return x.gather(1, row_pos.unsqueeze(-1).expand({B, M, C}));
    };
    if (wrapped) {
      auto fn = [block, rows_ctx, rows_of](const std::vector<torch::Tensor>& xs) mutable {
        return std::vector<torch::Tensor>{block->forward_rows(rows_of(xs[0]), xs[0], rows_ctx).hidden};
      };
      h = nn::run_block(gather_, blocks_.size() - 1, fn, {h}, block->parameters(), recompute)[0];
    } else {
      h = block->forward_rows(rows_of(h), h, rows_ctx).hidden;  // (B,M,C)
    }
  }
  if (!final_norm.is_empty()) h = final_norm(h);
  // (N,C) in output_positions order: from the (B,M,C) slots, or from the full (B,T,C).
  if (rows_in_last_block) {
    out.hidden = h.index({rows.b, rows.slot});
  } else {
    out.hidden = rows.b.defined() ? h.index({rows.b, rows.t}) : h;
  }
  out.aux_loss = n_moe > 0 ? aux * (c.moe.aux_loss_weight / static_cast<double>(n_moe)) : aux;
  return out;
}

std::vector<std::shared_ptr<torch::nn::Module>> TransformerImpl::sharding_blocks() {
  std::vector<std::shared_ptr<torch::nn::Module>> out;
  for (const auto& b : blocks_) out.push_back(b.ptr());
  return out;
}

EncoderImpl::EncoderImpl(const ModelConfig& config) : TransformerImpl(config) {
  BIOLM_CHECK(config.family == Family::Encoder, ConfigError, "model.family", "Encoder needs family \"encoder\"");
}

DecoderImpl::DecoderImpl(const ModelConfig& config) : TransformerImpl(config) {
  BIOLM_CHECK(config.family == Family::Decoder, ConfigError, "model.family", "Decoder needs family \"decoder\"");
}

std::shared_ptr<TransformerImpl> make_body(const ModelConfig& config) {
  if (config.is_decoder()) return std::make_shared<DecoderImpl>(config);
  return std::make_shared<EncoderImpl>(config);
}

ParameterCount count_module_parameters(const torch::nn::Module& module) {
  ParameterCount n;
  std::unordered_set<const void*> seen;
  for (const auto& p : module.parameters(/*recurse=*/true)) {
    if (!p.defined() || !seen.insert(p.unsafeGetTensorImpl()).second) continue;
    n.total += p.numel();
    if (p.requires_grad()) n.trainable += p.numel();
  }
  return n;
}

}  // namespace biolm::models
