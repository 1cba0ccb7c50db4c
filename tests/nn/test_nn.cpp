// nn building blocks: norms, rotary, masks, fused vs explicit attention, MLP, MoE, checkpointing,
// and an Eigen re-implementation (written here only) of an encoder and a decoder block.
#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <Eigen/Dense>
#include <cmath>

#include "biolm/core/error.h"
#include "biolm/nn/attention.h"
#include "biolm/core/compat.h"
#include "biolm/nn/batched_matmul.h"
#include "biolm/nn/block.h"
#include "biolm/nn/checkpoint.h"
#include "biolm/nn/dropout.h"
#include "biolm/nn/fused.h"
#include "biolm/nn/mlp.h"
#include "biolm/nn/moe.h"
#include "biolm/nn/norm.h"
#include "biolm/nn/rotary.h"
#include "support/test_util.h"

using namespace biolm;
using namespace biolm::nn;
using Eigen::MatrixXd;

namespace {

MatrixXd to_eigen(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t rows = c.dim() == 1 ? 1 : c.size(0), cols = c.dim() == 1 ? c.size(0) : c.size(1);
  MatrixXd m(rows, cols);
  const double* p = c.data_ptr<double>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) m(i, j) = p[i * cols + j];
  return m;
}

torch::Tensor from_eigen(const MatrixXd& m) {
  auto t = torch::empty({m.rows(), m.cols()}, torch::kDouble);
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) t[i][j] = m(i, j);
  return t;
}

// y = x W^T + b
MatrixXd eigen_linear(const MatrixXd& x, LinearImpl& l) {
  MatrixXd y = x * to_eigen(l.weight).transpose();
  if (l.bias.defined()) y.rowwise() += to_eigen(l.bias).row(0);
  return y;
}

MatrixXd eigen_layer_norm(const MatrixXd& x, NormImpl& n) {
  const auto w = to_eigen(n.weight), b = to_eigen(n.bias);
  MatrixXd y(x.rows(), x.cols());
  for (int64_t i = 0; i < x.rows(); ++i) {
    const double mean = x.row(i).mean();
    const double var = (x.row(i).array() - mean).square().mean();
    for (int64_t j = 0; j < x.cols(); ++j) y(i, j) = (x(i, j) - mean) / std::sqrt(var + n.options.eps()) * w(0, j) + b(0, j);
  }
  return y;
}

MatrixXd eigen_rms_norm(const MatrixXd& x, NormImpl& n) {
  const auto w = to_eigen(n.weight);
  MatrixXd y(x.rows(), x.cols());
  for (int64_t i = 0; i < x.rows(); ++i) {
    const double r = 1.0 / std::sqrt(x.row(i).array().square().mean() + n.options.eps());
    for (int64_t j = 0; j < x.cols(); ++j) y(i, j) = x(i, j) * r * w(0, j);
  }
  return y;
}

// Rotary on one head's (T,D) block at positions 0..T-1, pairing dimension i with i + D/2.
MatrixXd eigen_rope(const MatrixXd& x, double theta) {
  const int64_t D = x.cols(), half = D / 2;
  MatrixXd y = x;
  for (int64_t t = 0; t < x.rows(); ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = t * std::pow(theta, -2.0 * i / D);
      y(t, i) = x(t, i) * std::cos(a) - x(t, i + half) * std::sin(a);
      y(t, i + half) = x(t, i + half) * std::cos(a) + x(t, i) * std::sin(a);
    }
  }
  return y;
}

// One sequence of self-attention: x (T,C); key_ok[t] false hides key t; causal hides the future.
MatrixXd eigen_attention(const MatrixXd& x, AttentionImpl& a, const std::vector<bool>& key_ok, bool causal,
                         bool rope, double theta) {
  const int64_t T = x.rows(), H = a.options.n_heads(), Hkv = a.options.n_kv_heads();
  const int64_t D = a.options.hidden_size() / H;
  const MatrixXd q = eigen_linear(x, *a.q_proj), k = eigen_linear(x, *a.k_proj), v = eigen_linear(x, *a.v_proj);
  MatrixXd y(T, H * D);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / (H / Hkv);  // the KV head serving query head h
    MatrixXd qh = q.block(0, h * D, T, D), kh = k.block(0, g * D, T, D);
    const MatrixXd vh = v.block(0, g * D, T, D);
    if (rope) {
      qh = eigen_rope(qh, theta);
      kh = eigen_rope(kh, theta);
    }
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> s(static_cast<size_t>(T));
      double mx = -1e300;
      for (int64_t j = 0; j < T; ++j) {
        const bool ok = key_ok[static_cast<size_t>(j)] && (!causal || j <= i);
        s[static_cast<size_t>(j)] = ok ? qh.row(i).dot(kh.row(j)) / std::sqrt(static_cast<double>(D)) : -1e300;
        mx = std::max(mx, s[static_cast<size_t>(j)]);
      }
      double z = 0;
      for (auto& e : s) z += (e = (e <= -1e299 ? 0.0 : std::exp(e - mx)));
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < T; ++j) acc += s[static_cast<size_t>(j)] / z * vh(j, d);
        y(i, h * D + d) = acc;
      }
    }
  }
  return eigen_linear(y, *a.o_proj);
}

MatrixXd gelu_erf(const MatrixXd& x) {
  return x.unaryExpr([](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); });
}
MatrixXd silu(const MatrixXd& x) { return x.unaryExpr([](double v) { return v / (1.0 + std::exp(-v)); }); }

AttentionContext context_for(int64_t B, int64_t T, bool causal, const torch::Tensor& attention_mask, bool rope,
                             double theta, int64_t D, torch::ScalarType dtype = torch::kFloat) {
  AttentionContext ctx;
  ctx.mask = make_attention_mask(B, T, 0, causal, attention_mask, {}, torch::kCPU);
  if (rope) {
    const auto pos = torch::arange(T, torch::kLong).expand({B, T});
    std::tie(ctx.cos, ctx.sin) = rotary_cos_sin(pos, D, theta, dtype);
  }
  return ctx;
}

}  // namespace

TEST_CASE("norms match their formulas", "[nn]") {
  torch::manual_seed(1);
  const auto x = torch::randn({3, 8});
  SECTION("RMSNorm: x / sqrt(mean(x^2) + eps) * w") {
    Norm n(NormOptions(8).kind(NormKind::RMSNorm).eps(1e-6));
    { torch::NoGradGuard g; n->weight.copy_(torch::linspace(0.5, 2.0, 8)); }
    REQUIRE_FALSE(n->bias.defined());
    BIOLM_REQUIRE_CLOSE(n(x), from_eigen(eigen_rms_norm(to_eigen(x), *n)), 1e-6);
    // hand value: x = [3, 4] -> rms = sqrt(12.5)
    Norm n2(NormOptions(2).kind(NormKind::RMSNorm).eps(1e-12));
    const auto y = n2(torch::tensor({{3.0f, 4.0f}}));
    REQUIRE(y[0][0].item<float>() == Approx(3.0 / std::sqrt(12.5)).epsilon(1e-6));
  }
  SECTION("LayerNorm") {
    Norm n(NormOptions(8).kind(NormKind::LayerNorm).eps(1e-5));
    { torch::NoGradGuard g; n->bias.copy_(torch::linspace(-1, 1, 8)); }
    BIOLM_REQUIRE_CLOSE(n(x), from_eigen(eigen_layer_norm(to_eigen(x), *n)), 1e-5);
  }
}

TEST_CASE("rotary embeddings: rotate_half layout, norms kept, scores depend on relative position", "[nn]") {
  const auto x = torch::tensor({1.0, 2.0, 3.0, 4.0});
  BIOLM_REQUIRE_CLOSE(rotate_half(x), torch::tensor({-3.0, -4.0, 1.0, 2.0}), 0.0);
  torch::manual_seed(2);
  const int64_t D = 8;
  const auto q = torch::randn({1, 1, 1, D}, torch::kDouble), k = torch::randn({1, 1, 1, D}, torch::kDouble);
  auto score = [&](int64_t pq, int64_t pk) {
    auto [cq, sq] = rotary_cos_sin(torch::full({1, 1}, pq, torch::kLong), D, 10000.0, torch::kDouble);
    auto [ck, sk] = rotary_cos_sin(torch::full({1, 1}, pk, torch::kLong), D, 10000.0, torch::kDouble);
    const auto rq = apply_rotary(q, cq, sq), rk = apply_rotary(k, ck, sk);
    REQUIRE(rq.norm().item<double>() == Approx(q.norm().item<double>()).epsilon(1e-12));
    return (rq * rk).sum().item<double>();
  };
  REQUIRE(score(5, 2) == Approx(score(13, 10)).epsilon(1e-10));
  REQUIRE(std::abs(score(5, 2) - score(5, 4)) > 1e-6);
  // position 0 is the identity
  auto [c0, s0] = rotary_cos_sin(torch::zeros({1, 1}, torch::kLong), D, 10000.0, torch::kDouble);
  BIOLM_REQUIRE_CLOSE(apply_rotary(q, c0, s0), q, 0.0);
}

TEST_CASE("attention masks combine causality, padding and segments, empty rows are opened", "[nn]") {
  // one row, left padding of 1, causal, T=3
  const auto m = make_attention_mask(1, 3, 0, true, torch::tensor({{0, 1, 1}}), {}, torch::kCPU);
  // query 0 (padding) sees nothing causal+unpadded -> opened to all keys
  const auto expect = torch::tensor({{true, true, true}, {false, true, false}, {false, true, true}}).view({1, 1, 3, 3});
  REQUIRE(torch::equal(m, expect));
  const auto seg = make_attention_mask(1, 4, 0, false, {}, torch::tensor({{0, 0, 1, 1}}), torch::kCPU);
  const auto expect_seg = torch::tensor({{1, 1, 0, 0}, {1, 1, 0, 0}, {0, 0, 1, 1}, {0, 0, 1, 1}}).to(torch::kBool).view({1, 1, 4, 4});
  REQUIRE(torch::equal(seg, expect_seg));
  // with a cache of 2: the single new query (absolute position 2) sees keys 0..2
  const auto c = make_attention_mask(1, 1, 2, true, {}, {}, torch::kCPU);
  REQUIRE(torch::equal(c, torch::ones({1, 1, 1, 3}, torch::kBool)));
  REQUIRE_THROWS_AS(make_attention_mask(1, 3, 0, true, torch::ones({1, 4}), {}, torch::kCPU), ShapeError);
}

TEST_CASE("fused and explicit attention agree, and fully masked rows stay finite", "[nn]") {
  torch::manual_seed(3);
  for (const int64_t kv : {4, 2}) {
    DYNAMIC_SECTION("n_kv_heads " << kv) {
      Attention fused(AttentionOptions(16, 4).n_kv_heads(kv).rotary(true).fused(true));
      Attention plain(AttentionOptions(16, 4).n_kv_heads(kv).rotary(true).fused(false));
      { torch::NoGradGuard g; for (size_t i = 0; i < fused->parameters().size(); ++i) plain->parameters()[i].copy_(fused->parameters()[i]); }
      const auto x = torch::randn({2, 5, 16});
      const auto am = torch::tensor({{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}});
      for (bool causal : {false, true}) {
        const auto ctx = context_for(2, 5, causal, am, true, 10000.0, 4);
        const auto a = fused(x, ctx).out, b = plain(x, ctx).out;
        REQUIRE(torch::isfinite(a).all().item<bool>());
        REQUIRE(torch::isfinite(b).all().item<bool>());
        BIOLM_REQUIRE_CLOSE(a, b, 1e-5);  // float32 sums of 5 terms
      }
    }
  }
}

TEST_CASE("fused attention (2.x: the fused CPU kernel) equals the math path: padding, causal flag, packed segments, gradients",
          "[nn]") {
  // On LibTorch 2.x compat::scaled_dot_product_attention is at::scaled_dot_product_attention (its
  // fused CPU kernels when the inputs allow them); on 1.13 the private math op. Each variant of the
  // masks the models build is compared with explicit_attention, outputs and input gradients.
  torch::manual_seed(11);
  const int64_t B = 2, T = 7, C = 32, H = 4, D = C / H;
  Attention fused(AttentionOptions(C, H).n_kv_heads(2).rotary(true).fused(true));
  Attention plain(AttentionOptions(C, H).n_kv_heads(2).rotary(true).fused(false));
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < fused->parameters().size(); ++i) plain->parameters()[i].copy_(fused->parameters()[i]);
  }
  const auto pos = torch::arange(T, torch::kLong).expand({B, T});
  AttentionContext ctx;
  std::tie(ctx.cos, ctx.sin) = rotary_cos_sin(pos, D, 10000.0, torch::kFloat);
  SECTION("causal flag, no mask (the flash path)") { ctx.is_causal = true; }
  SECTION("padding, bidirectional") {
    ctx.mask = make_attention_mask(B, T, 0, false, torch::tensor({{0, 0, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1}}), {},
                                   torch::kCPU);
  }
  SECTION("packed segments, causal (three documents in row 0, two in row 1)") {
    const auto seg = torch::tensor({{0, 0, 0, 1, 1, 2, 2}, {0, 0, 0, 0, 1, 1, 1}});
    ctx.mask = make_attention_mask(B, T, 0, true, {}, seg, torch::kCPU);
  }
  const auto x = torch::randn({B, T, C});
  const auto xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
  const auto a = fused(xa, ctx).out, b = plain(xb, ctx).out;
  BIOLM_REQUIRE_CLOSE(a, b, 1e-5);  // float32, softmax over <= 7 keys, D = 8
  const auto w = torch::randn_like(a);
  (a * w).sum().backward();
  (b * w).sum().backward();
  BIOLM_REQUIRE_CLOSE(xa.grad(), xb.grad(), 1e-5);
  BIOLM_REQUIRE_CLOSE(fused->q_proj->weight.grad(), plain->q_proj->weight.grad(), 1e-4);  // sums over B*T
}

TEST_CASE("MLP activations: GELU erf vs tanh differ, SwiGLU is down(silu(gate x) * up x)", "[nn]") {
  const auto x = torch::tensor({-2.0, -0.5, 0.0, 1.0, 3.0}, torch::kDouble);
  const auto erf = activate(x, Activation::GeluErf), tanh = activate(x, Activation::GeluTanh);
  REQUIRE(erf[3].item<double>() == Approx(0.8413447460685429).epsilon(1e-12));  // 1 * Phi(1)
  REQUIRE(tanh[3].item<double>() == Approx(0.8411919906082768).epsilon(1e-12));
  torch::manual_seed(4);
  Mlp m(MlpOptions(6, 10).activation(Activation::SwiGLU).bias(false));
  const auto h = torch::randn({3, 6});
  const MatrixXd e = eigen_linear(
      silu(eigen_linear(to_eigen(h), *m->gate)).cwiseProduct(eigen_linear(to_eigen(h), *m->up)), *m->down);
  BIOLM_REQUIRE_CLOSE(m(h), from_eigen(e), 1e-6);
}

TEST_CASE("MoE: top-k routing, weighted experts, balanced aux loss, router gradients", "[nn][moe]") {
  torch::manual_seed(5);
  Moe moe(MoeOptions(4, 8, 4, 2).activation(Activation::GeluErf).bias(true));
  const auto x = torch::randn({1, 3, 4});
  {
    // router logits for token t are x_t . W_e; choose W so the ranking is known: e3 > e1 > e0 > e2 for x = e_0
    torch::NoGradGuard g;
    moe->router->weight.copy_(torch::tensor({{1.0f, 0.f, 0.f, 0.f}, {2.0f, 0.f, 0.f, 0.f}, {-1.0f, 0.f, 0.f, 0.f}, {3.0f, 0.f, 0.f, 0.f}}));
  }
  const auto e0 = torch::tensor({{{1.0f, 0.0f, 0.0f, 0.0f}}});
  auto r = moe(e0);
  const auto picked = std::get<0>(r.expert_index.sort(-1));
  REQUIRE(torch::equal(picked, torch::tensor({{1, 3}})));
  // out = (p3 * E3(x) + p1 * E1(x)) / (p1 + p3)
  const double p1 = std::exp(2.0), p3 = std::exp(3.0);
  const auto expect = (p3 * moe->experts[3]->as<MlpImpl>()->forward(e0) + p1 * moe->experts[1]->as<MlpImpl>()->forward(e0)) / (p1 + p3);
  BIOLM_REQUIRE_CLOSE(r.out, expect, 1e-6);

  SECTION("uniform router probabilities give aux = 1, skewed routing more") {
    { torch::NoGradGuard g; moe->router->weight.zero_(); }
    REQUIRE(moe(x).aux_loss.item<double>() == Approx(1.0).epsilon(1e-6));
    // all tokens prefer expert 3 strongly: f = (0,.5,0,.5)-ish, P concentrated -> aux > 1
    const auto probs = torch::tensor({{0.1, 0.2, 0.0, 0.7}, {0.1, 0.2, 0.0, 0.7}});
    const auto idx = torch::tensor({{3, 1}, {3, 1}});
    const double aux = load_balancing_loss(probs, idx, 4).item<double>();
    REQUIRE(aux == Approx(4 * (0.5 * 0.2 + 0.5 * 0.7)).epsilon(1e-6));  // 1.8
    // perfectly balanced: each expert gets a quarter of assignments and a quarter of the mass
    const auto bal = torch::full({2, 4}, 0.25, torch::kDouble);
    REQUIRE(load_balancing_loss(bal, torch::tensor({{0, 1}, {2, 3}}), 4).item<double>() == Approx(1.0));
  }
  SECTION("the router receives gradients from the output and the aux loss") {
    auto out = moe(x);
    (out.out.pow(2).sum() + out.aux_loss).backward();
    REQUIRE(moe->router->weight.grad().defined());
    REQUIRE(moe->router->weight.grad().abs().sum().item<double>() > 0);
  }
}

TEST_CASE("gradient checkpointing gives the same gradients, dropout included", "[nn][checkpoint]") {
  for (auto placement : {NormPlacement::Post, NormPlacement::Pre}) {
    DYNAMIC_SECTION("placement " << (placement == NormPlacement::Pre ? "pre" : "post")) {
      torch::manual_seed(6);
      Block block(BlockOptions(AttentionOptions(16, 4).n_kv_heads(2).dropout(0.2), MlpOptions(16, 32))
                      .norm_placement(placement)
                      .dropout(0.3)
                      .moe(MoeOptions(16, 32, 3, 2)));
      block->train();
      const auto x0 = torch::randn({2, 5, 16});
      const auto ctx = context_for(2, 5, true, {}, false, 0, 4);
      auto run = [&](bool ckpt) {
        block->zero_grad();
        auto x = x0.clone().requires_grad_(true);
        torch::manual_seed(77);
        std::vector<torch::Tensor> outs;
        auto fn = [&](const std::vector<torch::Tensor>& xs) {
          auto r = block->forward(xs[0], ctx);
          return std::vector<torch::Tensor>{r.hidden, r.aux_loss};
        };
        outs = ckpt ? checkpoint(fn, {x}) : fn({x});
        (outs[0].pow(2).sum() + outs[1]).backward();
        std::vector<torch::Tensor> grads{x.grad().clone(), outs[0].detach()};
        for (auto& p : block->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
        return grads;
      };
      const auto plain = run(false), ckpt = run(true);
      REQUIRE(plain.size() == ckpt.size());
      REQUIRE(plain[0].abs().sum().item<double>() > 0);
      for (size_t i = 0; i < plain.size(); ++i) BIOLM_REQUIRE_CLOSE(plain[i], ckpt[i], 1e-6);
    }
  }
}

TEST_CASE("Philox-4x32-10 reproduces Random123's known-answer vectors", "[nn][dropout]") {
  // The published vectors of the Random123 reference implementation (kat_vectors).
  CHECK(philox4x32_10({0u, 0u, 0u, 0u}, {0u, 0u}) ==
        std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}) ==
        std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  // Key 0, elements 0..3 draw counter 0: 0x6627e8d5 (0.400 of 2^32), 0xe169c58d (0.881),
  // 0xbc57ac4c (0.736), 0x9b00dbd8 (0.605); an element keeps when its draw is below 1 - p.
  auto keep = [](double p) {
    const auto m = dropout_keep_mask({4}, p, 0);
    return std::vector<int>{m[0].item<int>(), m[1].item<int>(), m[2].item<int>(), m[3].item<int>()};
  };
  CHECK(keep(0.5) == std::vector<int>{1, 0, 0, 0});
  CHECK(keep(0.3) == std::vector<int>{1, 0, 0, 1});
  CHECK(keep(0.2) == std::vector<int>{1, 0, 1, 1});
  CHECK(keep(0.1) == std::vector<int>{1, 1, 1, 1});
  CHECK(keep(0.7) == std::vector<int>{0, 0, 0, 0});
}

TEST_CASE("dropout: keep rate, scaling, independence, gradient, seeding and thread count", "[nn][dropout]") {
  const int64_t n = 1 << 22;
  const auto x = torch::rand({n / 1024, 1024}) + 0.5;  // no zeros: a zero output means dropped
  REQUIRE(dropout_is_fused(x));
  for (double p : {0.1, 0.5}) {
    DYNAMIC_SECTION("p " << p) {
      torch::manual_seed(3);
      const auto y = nn::dropout(x, p, true);
      const auto kept = y.ne(0);
      // Binomial(n, 1-p): 6 standard deviations.
      const double rate = kept.to(torch::kDouble).mean().item<double>();
      CHECK(std::abs(rate - (1 - p)) < 6 * std::sqrt(p * (1 - p) / n));
      // Kept elements are x / (1 - p), exactly as float computes x * (1 / (1 - p)).
      const auto scaled = x * static_cast<float>(1.0 / (1.0 - p));
      CHECK(torch::equal(y.masked_select(kept), scaled.masked_select(kept)));
      // Neighbours inside one Philox block (i, i+1) and across blocks (i, i+4) are independent.
      const auto k = kept.flatten().to(torch::kDouble);
      for (int64_t lag : {1, 2, 4, 1023}) {
        const double both = (k.narrow(0, 0, n - lag) * k.narrow(0, lag, n - lag)).mean().item<double>();
        const double q = (1 - p) * (1 - p);
        CHECK(std::abs(both - q) < 6 * std::sqrt(q * (1 - q) / (n - lag)));
      }
      // Backward: the gradient is the upstream gradient, masked and scaled the same way.
      auto xr = x.clone().requires_grad_(true);
      torch::manual_seed(3);
      const auto yr = nn::dropout(xr, p, true);
      REQUIRE(torch::equal(yr, y));
      const auto w = torch::randn_like(x);
      (yr * w).sum().backward();
      CHECK(torch::equal(xr.grad(), w * (kept.to(torch::kFloat) * static_cast<float>(1.0 / (1.0 - p)))));
    }
  }
  SECTION("the CPU generator governs it: same seed same mask, the next call another, any thread count") {
    const int threads = torch::get_num_threads();
    torch::manual_seed(11);
    const auto a = nn::dropout(x, 0.1, true), b = nn::dropout(x, 0.1, true);
    torch::set_num_threads(1);
    torch::manual_seed(11);
    const auto a1 = nn::dropout(x, 0.1, true);
    torch::set_num_threads(std::max(threads, 2));
    torch::manual_seed(11);
    const auto a2 = nn::dropout(x, 0.1, true);
    torch::set_num_threads(threads);
    CHECK(torch::equal(a, a1));
    CHECK(torch::equal(a, a2));
    CHECK_FALSE(torch::equal(a.ne(0), b.ne(0)));
    // The key is one 64-bit draw from the generator, so the mask equals dropout_keep_mask of it.
    torch::manual_seed(11);
    const auto key = static_cast<uint64_t>(
        at::detail::getDefaultCPUGenerator().get<at::CPUGeneratorImpl>()->random64());
    CHECK(torch::equal(a.ne(0), dropout_keep_mask(x.sizes(), 0.1, key).to(torch::kBool)));
  }
  SECTION("evaluation, p 0 and a non-contiguous input") {
    CHECK(nn::dropout(x, 0.3, false).is_same(x));
    CHECK(nn::dropout(x, 0.0, true).is_same(x));
    const auto xt = x.t();
    torch::manual_seed(4);
    const auto yt = nn::dropout(xt, 0.2, true);
    torch::manual_seed(4);
    const auto yc = nn::dropout(xt.contiguous(), 0.2, true);
    CHECK(torch::equal(yt, yc));
    CHECK(nn::dropout(x, 1.0, true).abs().sum().item<double>() == 0.0);
    CHECK_THROWS_AS(nn::dropout(x, 1.5, true), ConfigError);
  }
}

namespace {

/// y = f(a, b) with a trainable (b too when b_grad), then (y * up).sum() backward, up = wave of
/// 0, 1, 2, ... in a's dtype: {y, da, db (zeros when b is frozen)}.
std::vector<torch::Tensor> value_and_grads(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& f,
                                           const torch::Tensor& a0, const torch::Tensor& b0, bool b_grad,
                                           torch::Tensor (*wave)(const torch::Tensor&)) {
  auto a = a0.clone().requires_grad_(true);
  auto b = b0.clone().requires_grad_(b_grad);
  const auto y = f(a, b);
  const auto up = wave(torch::arange(y.numel(), torch::TensorOptions().dtype(a0.scalar_type()))).view(y.sizes());
  (y * up).sum().backward();
  return {y.detach(), a.grad(), b_grad ? b.grad() : torch::zeros_like(b)};
}

/// Each pair equal within tol of the larger of 1 and the reference's largest magnitude.
void require_close_relative(const std::vector<torch::Tensor>& got, const std::vector<torch::Tensor>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    BIOLM_REQUIRE_CLOSE(got[i], want[i], tol * std::max(1.0, want[i].abs().max().item<double>()));
  }
}

}  // namespace

TEST_CASE("fused RMSNorm equals its ATen composite: values, input and weight gradients", "[nn][fused]") {
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    DYNAMIC_SECTION("dtype " << (dtype == torch::kDouble ? "float64" : "float32")) {
      const double tol = dtype == torch::kDouble ? 1e-12 : 1e-6;  // relative to the largest value
      torch::manual_seed(21);
      // 70 rows: two full blocks of dw partial sums and a partial one; a transposed (non-contiguous) input.
      const auto x0 = (torch::randn({37, 14, 5}, dtype) * 3).transpose(0, 1);
      const auto w0 = torch::randn({5}, dtype);
      REQUIRE(fused_elementwise(x0));
      auto fused = [](const torch::Tensor& x, const torch::Tensor& w) { return rms_norm(x, w, 1e-6); };
      auto composite = [](const torch::Tensor& x, const torch::Tensor& w) { return rms_norm_composite(x, w, 1e-6); };
      for (bool weight_grad : {true, false}) {
        require_close_relative(value_and_grads(fused, x0, w0, weight_grad, torch::cos),
                               value_and_grads(composite, x0, w0, weight_grad, torch::cos), tol);
      }
    }
  }
  SECTION("a NaN row stays NaN and the others are untouched") {
    auto x = torch::randn({3, 8});
    x[1][2] = std::numeric_limits<float>::quiet_NaN();
    const auto y = rms_norm(x, torch::ones({8}), 1e-6);
    CHECK(y[1].isnan().all().item<bool>());
    CHECK(torch::allclose(y[0], rms_norm_composite(x[0], torch::ones({8}), 1e-6)));
  }
}

TEST_CASE("fused SwiGLU equals silu(gate) * up: values over the float range, gradients", "[nn][fused]") {
  SECTION("float32 against float64 silu: at most a few ulp from -88 to 88") {
    const auto a = torch::linspace(-88, 88, 200001, torch::kFloat);
    const auto b = torch::ones_like(a);
    const auto h = swiglu(a, b).to(torch::kDouble);
    const auto exact = torch::silu(a.to(torch::kDouble));
    const auto rel = ((h - exact).abs() / exact.abs().clamp_min(1e-30)).max().item<double>();
    CHECK(rel < 1e-6);
    // Far tails: silu(-200) is -0.0-ish, silu(200) = 200; NaN stays NaN.
    const auto tails = swiglu(torch::tensor({-200.0f, 200.0f, std::nanf("")}), torch::ones({3}));
    CHECK(std::abs(tails[0].item<float>()) < 1e-30);
    CHECK(tails[1].item<float>() == 200.0f);
    CHECK(std::isnan(tails[2].item<float>()));
  }
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    DYNAMIC_SECTION("gradients, dtype " << (dtype == torch::kDouble ? "float64" : "float32")) {
      const double tol = dtype == torch::kDouble ? 1e-12 : 1e-6;  // relative to the largest value
      torch::manual_seed(22);
      const auto a0 = torch::randn({6, 9, 11}, dtype) * 4, b0 = torch::randn({6, 9, 11}, dtype);
      for (bool b_grad : {true, false}) {
        require_close_relative(value_and_grads(swiglu, a0, b0, b_grad, torch::sin),
                               value_and_grads(swiglu_composite, a0, b0, b_grad, torch::sin), tol);
      }
    }
  }
}

TEST_CASE("fused GELU equals torch::gelu (erf) over the float range: values and gradient", "[nn][fused]") {
  const auto x0 = torch::cat({torch::linspace(-15, 15, 300001, torch::kFloat), torch::randn({4096}) * 3});
  REQUIRE(fused_elementwise(x0));
  auto x = x0.clone().requires_grad_(true);
  const auto y = nn::gelu(x);
  const auto up = torch::cos(torch::arange(x0.numel(), torch::kDouble));
  (y * up.to(torch::kFloat)).sum().backward();
  // The reference in float64 through erfc, which keeps the left tail (torch::gelu's 1 + erf
  // cancels there: in float64 it returns -0 for GELU(-10) = -7.6e-23).
  const auto xd = x0.to(torch::kDouble);
  const auto cdf = 0.5 * torch::erfc(-xd / std::sqrt(2.0));
  const auto pdf = torch::exp(-0.5 * xd * xd) / std::sqrt(2 * M_PI);
  const auto yr = xd * cdf, gr = up * (cdf + xd * pdf);
  // Error allowed per element: a few float32 ulp plus what rounding x itself to float32 costs
  // (GELU's left tail has condition number about x^2): 1.2e-7 * (8 + 2 x^2), relative to the
  // float64 value (to Phi + |x| phi for the gradient, which crosses zero at x = -0.75), with an
  // absolute floor of 1e-30 where GELU underflows.
  const auto allowed = 1.2e-7 * (8 + 2 * xd * xd);
  const auto err_y = (y.detach().to(torch::kDouble) - yr).abs() / yr.abs().clamp_min(1e-30);
  const auto err_g = (x.grad().to(torch::kDouble) - gr).abs() / (up.abs() * (cdf + xd.abs() * pdf)).clamp_min(1e-30);
  const auto err_aten = (torch::gelu(x0).to(torch::kDouble) - yr).abs() / yr.abs().clamp_min(1e-30);
  INFO("max error / allowed: value " << (err_y / allowed).max().item<double>() << ", gradient "
                                     << (err_g / allowed).max().item<double>() << "; torch::gelu float32 on x > -9: "
                                     << (err_aten / allowed).masked_select(x0 > -9).max().item<double>());
  CHECK((err_y <= allowed).all().item<bool>());
  CHECK((err_g <= allowed).all().item<bool>());
  CHECK(std::isnan(nn::gelu(torch::tensor({std::nanf("")}))[0].item<float>()));
}

TEST_CASE("fused cross entropy equals nll_loss(log_softmax): sum, ignored rows, gradient, bad labels", "[nn][fused]") {
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    DYNAMIC_SECTION("dtype " << (dtype == torch::kDouble ? "float64" : "float32")) {
      torch::manual_seed(23);
      // 37 rows over 1,003 classes (not a multiple of the 16 lanes), logits spread to +-40 so that
      // the max shift matters, a non-contiguous (transposed) input, four ignored rows.
      const auto x0 = (torch::randn({1003, 37}, dtype) * 12).t();
      auto y = torch::randint(0, 1003, {37}, torch::kLong);
      for (int64_t r : {0, 5, 17, 36}) y[r] = -100;
      REQUIRE(fused_elementwise(x0));
      auto xa = x0.clone().requires_grad_(true), xb = x0.clone().requires_grad_(true);
      const auto la = cross_entropy_sum(xa, y, -100);
      const auto lb = torch::nll_loss(torch::log_softmax(xb, -1), y, {}, at::Reduction::Sum, -100);
      const auto up = 0.37;  // a non-unit upstream gradient
      (la * up).backward();
      (lb * up).backward();
      const double tol = dtype == torch::kDouble ? 1e-12 : 2e-6;
      CHECK(std::abs(la.item<double>() - lb.item<double>()) <= tol * std::abs(lb.item<double>()));
      const double gmax = xb.grad().abs().max().item<double>();
      CHECK((xa.grad() - xb.grad()).abs().max().item<double>() <= tol * gmax);
      CHECK(xa.grad()[0].abs().max().item<double>() == 0.0);  // an ignored row gets no gradient
      // Each kept row's gradient sums to zero (softmax minus a one-hot), times the upstream 0.37.
      CHECK(xa.grad()[1].sum().abs().item<double>() < 1e-5);
    }
  }
  SECTION("every row ignored: zero loss, zero gradient") {
    auto x = torch::randn({3, 7}).requires_grad_(true);
    const auto l = cross_entropy_sum(x, torch::full({3}, -100, torch::kLong), -100);
    l.backward();
    CHECK(l.item<double>() == 0.0);
    CHECK(x.grad().abs().sum().item<double>() == 0.0);
  }
  SECTION("a label out of range is an error naming the range; a NaN logit makes its row's loss NaN") {
    const auto x = torch::randn({2, 5});
    CHECK_THROWS_WITH(cross_entropy_sum(x, torch::tensor({1, 5}, torch::kLong), -100),
                      Catch::Contains("[0, 5)"));
    auto xn = x.clone();
    xn[1][3] = std::numeric_limits<float>::quiet_NaN();
    CHECK(std::isnan(cross_entropy_sum(xn, torch::tensor({1, 2}, torch::kLong), -100).item<float>()));
  }
}

TEST_CASE("fused masked softmax equals softmax(masked_fill(-inf)): padding, causal, per-head masks, gradient",
          "[nn][fused]") {
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    DYNAMIC_SECTION("dtype " << (dtype == torch::kDouble ? "float64" : "float32")) {
      torch::manual_seed(25);
      const int64_t B = 3, H = 4, T = 9, K = 37;  // K not a multiple of the 16 lanes
      const auto s0 = torch::randn({B, H, T, K}, dtype) * 6;
      REQUIRE(fused_elementwise(s0));
      const auto pad = torch::rand({B, 1, 1, K}) > 0.3;
      const auto causal = (torch::arange(K).view({1, K}) <= torch::arange(T).view({T, 1}) + 20).view({1, 1, T, K});
      const auto per_head = torch::rand({B, H, T, K}) > 0.5;
      const std::vector<std::pair<const char*, torch::Tensor>> masks = {
          {"none", torch::Tensor()}, {"padding (B,1,1,K)", pad}, {"causal (1,1,T,K)", causal & pad},
          {"per head (B,H,T,K), a transposed view", per_head.transpose(2, 3).contiguous().transpose(2, 3)}};
      const double tol = dtype == torch::kDouble ? 1e-12 : 1e-6;
      for (const auto& [name, m] : masks) {
        INFO(name);
        auto ma = m;
        if (ma.defined()) ma.index_put_({0, torch::indexing::Slice(), 0, 0}, true);  // keep one per row...
        if (ma.defined() && ma.size(0) > 1) ma = ma | (torch::arange(K) == 0).view({1, 1, 1, K});  // ...in every row
        auto xa = s0.clone().requires_grad_(true), xb = s0.clone().requires_grad_(true);
        const auto pa = masked_softmax(xa, ma), pb = masked_softmax_composite(xb, ma);
        CHECK((pa - pb).abs().max().item<double>() <= tol);
        if (ma.defined()) CHECK(pa.masked_select(ma.expand_as(pa).logical_not()).abs().max().item<double>() == 0.0);
        const auto up = torch::cos(torch::arange(pa.numel(), dtype)).view(pa.sizes());
        (pa * up).sum().backward();
        (pb * up).sum().backward();
        CHECK((xa.grad() - xb.grad()).abs().max().item<double>() <= tol);
      }
    }
  }
  SECTION("a row with nothing kept is NaN, as in the composite; other rows are untouched") {
    const auto s = torch::randn({1, 1, 2, 5});
    auto m = torch::ones({1, 1, 2, 5}, torch::kBool);
    m[0][0][1] = false;
    const auto p = masked_softmax(s, m);
    CHECK(p[0][0][1].isnan().all().item<bool>());
    CHECK(masked_softmax_composite(s, m)[0][0][1].isnan().all().item<bool>());
    CHECK(torch::allclose(p[0][0][0], torch::softmax(s[0][0][0], -1)));
  }
  SECTION("a mask that does not broadcast is an error") {
    CHECK_THROWS_WITH(masked_softmax(torch::randn({2, 2, 3, 4}), torch::ones({2, 1, 3, 5}, torch::kBool)),
                      Catch::Contains("mask must broadcast"));
  }
}

TEST_CASE("fused rotary equals x * cos + rotate_half(x) * sin, strided input, gradient", "[nn][fused]") {
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    DYNAMIC_SECTION("dtype " << (dtype == torch::kDouble ? "float64" : "float32")) {
      torch::manual_seed(24);
      const int64_t B = 3, T = 7, H = 4, D = 10;
      // As attention makes it: (B,T,H,D) viewed as (B,H,T,D); cos/sin per row, and broadcast (1,T,D).
      const auto x0 = torch::randn({B, T, H, D}, dtype).transpose(1, 2);
      for (int64_t cb : {B, int64_t{1}}) {
        const auto pos = torch::arange(T).repeat({cb, 1}) + torch::arange(cb).unsqueeze(1) * 3;
        const auto [c, s] = rotary_cos_sin(pos, D, 10000.0, dtype);
        REQUIRE(fused_elementwise(x0));
        auto xa = x0.clone().requires_grad_(true), xb = x0.clone().requires_grad_(true);
        const auto ya = rotary(xa, c, s), yb = rotary_composite(xb, c, s);
        // float64 is not cloned, so no FMA: the same bits. float32's AVX-512 clone may fuse a
        // product and a sum (vector_clones.h): an ulp or two of values of magnitude ~3.
        const double tol = dtype == torch::kDouble ? 0.0 : 1e-6;
        CHECK((ya - yb).abs().max().item<double>() <= tol);
        const auto up = torch::cos(torch::arange(ya.numel(), dtype)).view(ya.sizes());
        (ya * up).sum().backward();
        (yb * up).sum().backward();
        CHECK((xa.grad() - xb.grad()).abs().max().item<double>() <= tol);
        CHECK(torch::equal(apply_rotary(x0, c, s), ya));  // attention's entry point takes the fused kernel
      }
    }
  }
  SECTION("cos/sin that need a gradient, and bf16, take the composite") {
    const auto x = torch::randn({1, 2, 3, 4});
    const auto pos = torch::arange(3).unsqueeze(0);
    auto [c, s] = rotary_cos_sin(pos, 4, 10000.0, torch::kFloat);
    c.requires_grad_(true);
    (rotary(x, c, s)).sum().backward();
    CHECK(c.grad().defined());
    CHECK(rotary(x.to(torch::kBFloat16), c.detach().to(torch::kBFloat16), s.to(torch::kBFloat16)).scalar_type() ==
          torch::kBFloat16);
  }
}

TEST_CASE("an encoder block equals its Eigen re-implementation (post-LN, GELU erf, MHA, padding)", "[nn][reference]") {
  torch::manual_seed(7);
  const int64_t C = 16, H = 4, T = 6;
  Block block(BlockOptions(AttentionOptions(C, H).bias(true), MlpOptions(C, 24).activation(Activation::GeluErf))
                  .norm_kind(NormKind::LayerNorm)
                  .norm_eps(1e-12)
                  .norm_placement(NormPlacement::Post));
  block->eval();
  { torch::NoGradGuard g; for (auto& p : block->parameters()) if (p.dim() == 1) p.uniform_(-0.5, 0.5); }
  const auto x = torch::randn({1, T, C});
  const auto am = torch::tensor({{1, 1, 1, 1, 0, 0}});
  const auto y = block(x, context_for(1, T, false, am, false, 0, C / H)).hidden[0];
  const MatrixXd xe = to_eigen(x[0]);
  const std::vector<bool> ok{true, true, true, true, false, false};
  const MatrixXd h = eigen_layer_norm(xe + eigen_attention(xe, *block->attn, ok, false, false, 0), *block->attn_norm);
  const MatrixXd f = eigen_linear(gelu_erf(eigen_linear(h, *block->mlp->up)), *block->mlp->down);
  const MatrixXd ye = eigen_layer_norm(h + f, *block->mlp_norm);
  BIOLM_REQUIRE_CLOSE(y, from_eigen(ye), 1e-5);  // float32 module vs float64 reference
}

TEST_CASE("a decoder block equals its Eigen re-implementation (pre-LN RMSNorm, RoPE, GQA, causal, SwiGLU)", "[nn][reference]") {
  torch::manual_seed(8);
  const int64_t C = 16, H = 4, Hkv = 2, T = 6;
  const double theta = 500.0;
  Block block(BlockOptions(AttentionOptions(C, H).n_kv_heads(Hkv).bias(false).rotary(true),
                           MlpOptions(C, 24).activation(Activation::SwiGLU).bias(false))
                  .norm_kind(NormKind::RMSNorm)
                  .norm_eps(1e-6)
                  .norm_placement(NormPlacement::Pre));
  block->eval();
  { torch::NoGradGuard g; for (auto& p : block->parameters()) if (p.dim() == 1) p.uniform_(0.5, 1.5); }
  const auto x = torch::randn({1, T, C});
  const auto y = block(x, context_for(1, T, true, {}, true, theta, C / H)).hidden[0];
  const MatrixXd xe = to_eigen(x[0]);
  const std::vector<bool> ok(T, true);
  const MatrixXd h = xe + eigen_attention(eigen_rms_norm(xe, *block->attn_norm), *block->attn, ok, true, true, theta);
  const MatrixXd n2 = eigen_rms_norm(h, *block->mlp_norm);
  const MatrixXd f = eigen_linear(silu(eigen_linear(n2, *block->mlp->gate)).cwiseProduct(eigen_linear(n2, *block->mlp->up)),
                                  *block->mlp->down);
  BIOLM_REQUIRE_CLOSE(y, from_eigen(h + f), 1e-5);
}

TEST_CASE("batched_matmul equals torch::matmul in value and gradient on attention's strided operands",
          "[nn][attention]") {
  torch::manual_seed(11);
  const int64_t B = 3, T = 5, H = 4, D = 6;
  // q, k, v as Attention makes them: (B,T,H,D) viewed as (B,H,T,D), not contiguous.
  auto base = [&] { return torch::randn({B, T, H, D}, torch::kFloat).transpose(1, 2).requires_grad_(true); };
  struct Case {
    const char* name;
    std::function<std::pair<torch::Tensor, torch::Tensor>()> make;
  };
  const std::vector<Case> cases = {
      {"q k^T (a strided, b transposed)", [&] { return std::make_pair(base(), base()); }},
      {"contiguous 3-d", [&] {
         return std::make_pair(torch::randn({7, 4, 9}).requires_grad_(true), torch::randn({7, 9, 2}).requires_grad_(true));
       }},
      {"one row, one batch", [&] {
         return std::make_pair(torch::randn({1, 1, 3}).requires_grad_(true), torch::randn({1, 3, 8}).requires_grad_(true));
       }},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto [a0, b0] = c.make();
    const bool qk = std::string(c.name).rfind("q k^T", 0) == 0;
    auto rhs = [&](const torch::Tensor& b) { return qk ? b.transpose(-2, -1) : b; };
    // 1.13 without MKL (Debian's): the native path must be the one taken, or this proves nothing there.
    if (compat::bmm_loops_per_matrix()) CHECK(batched_matmul_is_native(a0, rhs(b0)));
    auto a1 = a0.detach().clone().requires_grad_(true), b1 = b0.detach().clone().requires_grad_(true);
    // alpha (attention's 1/sqrt(D)) goes into the gemm, forward and backward.
    const auto want = torch::matmul(a1, rhs(b1)) * 0.3;
    const auto got = batched_matmul(a0, rhs(b0), 0.3);
    REQUIRE(got.sizes() == want.sizes());
    BIOLM_REQUIRE_CLOSE(got, want, 1e-5);
    const auto g = torch::randn_like(want);
    want.backward(g);
    got.backward(g);
    BIOLM_REQUIRE_CLOSE(a0.grad(), a1.grad(), 1e-5);
    BIOLM_REQUIRE_CLOSE(b0.grad(), b1.grad(), 1e-5);
  }
  if (compat::bmm_loops_per_matrix()) {
    // The gradients of q and k^T come back in the layout of the (B,T,H,D) projections they are
    // views of, so the views' backward needs no copy (a hook sees them before any accumulation).
    const auto src_q = torch::randn({B, T, H, D}).requires_grad_(true), src_k = torch::randn({B, T, H, D}).requires_grad_(true);
    const auto q = src_q.transpose(1, 2), kt = src_k.transpose(1, 2).transpose(-2, -1);
    torch::Tensor gq, gk;
    q.register_hook([&](torch::Tensor g) { gq = g; });
    kt.register_hook([&](torch::Tensor g) { gk = g; });
    batched_matmul(q, kt).pow(2).sum().backward();
    REQUIRE(gq.defined());
    REQUIRE(gk.defined());
    CHECK(gq.transpose(1, 2).is_contiguous());
    CHECK(gk.transpose(-2, -1).transpose(1, 2).is_contiguous());
    BIOLM_REQUIRE_CLOSE(src_q.grad(), 2 * torch::matmul(torch::matmul(q, kt), kt.transpose(-2, -1)).transpose(1, 2), 1e-4);
  }
  // Other dtypes and devices fall back to torch::matmul.
  const auto d = torch::randn({2, 3, 4}, torch::kDouble);
  CHECK_FALSE(batched_matmul_is_native(d, d.transpose(-2, -1)));
  BIOLM_REQUIRE_CLOSE(batched_matmul(d, d.transpose(-2, -1)), torch::matmul(d, d.transpose(-2, -1)), 1e-12);
}
