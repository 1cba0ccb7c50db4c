#include "biolm/data/collate.h"

#include <algorithm>
#include <set>

#include "biolm/core/error.h"

namespace biolm::data {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

namespace {

int64_t round_up(int64_t n, int64_t m) { return m > 1 ? (n + m - 1) / m * m : n; }

// (B, T) int64 tensor from rows, padded with `pad`.
torch::Tensor pad_rows(const std::vector<const std::vector<int64_t>*>& rows, int64_t T, int64_t pad) {
  const auto B = static_cast<int64_t>(rows.size());
  auto t = torch::full({B, T}, pad, torch::kInt64);
  auto* p = t.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    if (rows[static_cast<size_t>(b)] == nullptr) continue;
    const auto& r = *rows[static_cast<size_t>(b)];
    std::copy(r.begin(), r.begin() + std::min<int64_t>(T, static_cast<int64_t>(r.size())), p + b * T);
  }
  return t;
}

double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
uint64_t below(std::mt19937_64& rng, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(rng()) * n) >> 64);
}

}  // namespace

Batch collate(const std::vector<Features>& rows, const CollateOptions& opts) {
  if (rows.empty()) throw Error("collate: empty batch");
  Batch batch;
  batch.n_examples = static_cast<int64_t>(rows.size());
  const auto B = static_cast<int64_t>(rows.size());
  const Features& first = rows.front();
  if (!first.choices.empty()) {  // multiple choice: (B, K, T)
    // Rows may have different numbers of options (MedQA's 4- and 5-option files): K is the
    // largest; a missing option is one pad token (attended, so its row stays well defined) and
    // choice_mask (B,K) marks it 0, so the head scores it -inf.
    int64_t K = 0, T = 0;
    bool ragged = false;
    for (const auto& r : rows) {
      if (r.choices.empty()) throw Error("collate: a multiple-choice batch holds a row without options");
      ragged |= static_cast<int64_t>(r.choices.size()) != static_cast<int64_t>(first.choices.size());
      K = std::max<int64_t>(K, static_cast<int64_t>(r.choices.size()));
      for (const auto& c : r.choices) T = std::max<int64_t>(T, static_cast<int64_t>(c.size()));
    }
    T = round_up(T, opts.pad_to_multiple_of);
    auto ids = torch::full({B, K, T}, opts.pad_id, torch::kInt64);
    auto mask = torch::zeros({B, K, T}, torch::kInt64);
    auto types = torch::zeros({B, K, T}, torch::kInt64);
    auto labels = torch::full({B}, kIgnoreIndex, torch::kInt64);
    auto choice_mask = torch::ones({B, K}, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) {
      const auto& r = rows[static_cast<size_t>(b)];
      for (int64_t k = static_cast<int64_t>(r.choices.size()); k < K; ++k) {
        mask[b][k][0] = 1;
        choice_mask[b][k] = 0;
      }
      for (int64_t k = 0; k < static_cast<int64_t>(r.choices.size()); ++k) {
        const auto& c = r.choices[static_cast<size_t>(k)];
        const auto n = static_cast<int64_t>(c.size());
        ids[b][k].narrow(0, 0, n).copy_(torch::tensor(c, torch::kInt64));
        mask[b][k].narrow(0, 0, n).fill_(1);
        if (r.choice_type_ids.size() == r.choices.size()) {
          types[b][k].narrow(0, 0, n).copy_(torch::tensor(r.choice_type_ids[static_cast<size_t>(k)], torch::kInt64));
        }
      }
      labels[b] = r.label;
      batch.n_target_tokens += r.label != kIgnoreIndex;
    }
    batch["choice_ids"] = ids;
    batch["attention_mask"] = mask;
    batch["token_type_ids"] = types;
    batch["labels"] = labels;
    if (ragged) batch["choice_mask"] = choice_mask;
    return batch;
  }
  int64_t T = 0;
  for (const auto& r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(r.input_ids.size()));
  T = round_up(T, opts.pad_to_multiple_of);
  std::vector<const std::vector<int64_t>*> ids, types, labels, segs;
  std::vector<std::vector<int64_t>> ones(rows.size());
  bool token_labels = false, seq_labels = false, scores = false, spans = false, packed = false;
  for (size_t b = 0; b < rows.size(); ++b) {
    const auto& r = rows[b];
    ids.push_back(&r.input_ids);
    types.push_back(r.token_type_ids.empty() ? nullptr : &r.token_type_ids);
    labels.push_back(r.labels.empty() ? nullptr : &r.labels);
    segs.push_back(r.segment_ids.empty() ? nullptr : &r.segment_ids);
    ones[b].assign(r.input_ids.size(), 1);
    token_labels |= !r.labels.empty();
    seq_labels |= r.label != kIgnoreIndex;
    scores |= r.has_score;
    spans |= r.start_position >= 0;
    packed |= !r.segment_ids.empty();
  }
  std::vector<const std::vector<int64_t>*> mask_rows;
  for (const auto& o : ones) mask_rows.push_back(&o);
  batch["input_ids"] = pad_rows(ids, T, opts.pad_id);
  batch["attention_mask"] = pad_rows(mask_rows, T, 0);
  batch["token_type_ids"] = pad_rows(types, T, 0);
  if (token_labels) {
    batch["labels"] = pad_rows(labels, T, kIgnoreIndex);
    batch.n_target_tokens = batch["labels"].ne(kIgnoreIndex).sum().item<int64_t>();
  } else if (seq_labels) {
    auto l = torch::empty({B}, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) l[b] = rows[static_cast<size_t>(b)].label;
    batch["labels"] = l;
    batch.n_target_tokens = l.ne(kIgnoreIndex).sum().item<int64_t>();
  }
  if (scores) {
    auto s = torch::empty({B}, torch::kFloat32);
    for (int64_t b = 0; b < B; ++b) s[b] = static_cast<float>(rows[static_cast<size_t>(b)].score);
    batch["scores"] = s;
    batch.n_target_tokens = B;
  }
  if (!rows.empty() && !rows.front().targets.empty()) {
    // Multi-hot labels (multi-label classification), (B,L) float32; every row has L of them.
    const auto L = static_cast<int64_t>(rows.front().targets.size());
    auto t = torch::empty({B, L}, torch::kFloat32);
    for (int64_t b = 0; b < B; ++b) {
      const auto& r = rows[static_cast<size_t>(b)].targets;
      BIOLM_CHECK(static_cast<int64_t>(r.size()) == L, Error,
                  "collate: rows with " + std::to_string(r.size()) + " and " + std::to_string(L) + " targets");
      for (int64_t l = 0; l < L; ++l) t[b][l] = r[static_cast<size_t>(l)];
    }
    batch["targets"] = t;
    batch.n_target_tokens = B;
  }
  if (spans) {
    auto s = torch::empty({B}, torch::kInt64), e = torch::empty({B}, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) {
      s[b] = std::max<int64_t>(0, rows[static_cast<size_t>(b)].start_position);
      e[b] = std::max<int64_t>(0, rows[static_cast<size_t>(b)].end_position);
    }
    batch["start_positions"] = s;
    batch["end_positions"] = e;
    batch.n_target_tokens = B;
  }
  if (packed) {
    // Padding gets segment -1; positions restart at each document.
    auto seg = pad_rows(segs, T, -1);
    auto pos = torch::zeros({B, T}, torch::kInt64);
    auto* sp = seg.data_ptr<int64_t>();
    auto* pp = pos.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t p = 0;
      for (int64_t t = 0; t < T; ++t) {
        if (t > 0 && sp[b * T + t] != sp[b * T + t - 1]) p = 0;
        pp[b * T + t] = p++;
      }
    }
    batch["segment_ids"] = seg;
    batch["position_ids"] = pos;
  }
  return batch;
}

void apply_mlm(std::vector<int64_t>& ids, std::vector<int64_t>& labels, const std::vector<uint8_t>& word_starts,
               const MlmOptions& opts, std::mt19937_64& rng) {
  if (opts.mask_id < 0 || opts.vocab_size <= 0) throw ConfigError("data.mlm", "mask_id and vocab_size must be set");
  if (opts.whole_word && word_starts.size() != ids.size()) {
    throw ConfigError("data.mlm.whole_word", "whole-word masking needs word_starts for every token (shards written with word starts)");
  }
  const std::set<int64_t> never(opts.never_mask.begin(), opts.never_mask.end());
  labels.assign(ids.size(), kIgnoreIndex);
  const auto replace = [&](size_t t) {
    labels[t] = ids[t];
    const double r = unit(rng);
    if (r < opts.mask_token) {
      ids[t] = opts.mask_id;
    } else if (r < opts.mask_token + opts.random_token) {
      int64_t v;
      do {
        v = static_cast<int64_t>(below(rng, static_cast<uint64_t>(opts.vocab_size)));
      } while (never.count(v) != 0 || v == opts.mask_id);
      ids[t] = v;
    }
  };
  size_t t = 0;
  while (t < ids.size()) {
    if (never.count(ids[t]) != 0) {
      ++t;
      continue;
    }
    size_t end = t + 1;  // one token, or the whole word starting here
    if (opts.whole_word) {
      while (end < ids.size() && word_starts[end] == 0 && never.count(ids[end]) == 0) ++end;
    }
    if (unit(rng) < opts.mask_prob) {
      for (size_t k = t; k < end; ++k) replace(k);
    }
    t = end;
  }
}

Batch collate_mlm(std::vector<Features> rows, const CollateOptions& copts, const MlmOptions& mopts, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (auto& r : rows) {
    r.label = kIgnoreIndex;
    apply_mlm(r.input_ids, r.labels, r.word_starts, mopts, rng);
  }
  return collate(rows, copts);
}

Batch collate_clm(std::vector<Features> rows, const CollateOptions& copts) {
  for (auto& r : rows) {
    r.label = kIgnoreIndex;
    r.labels = r.input_ids;
    for (size_t t = 1; t < r.segment_ids.size() && t < r.labels.size(); ++t) {
      if (r.segment_ids[t] != r.segment_ids[t - 1]) r.labels[t] = kIgnoreIndex;
    }
  }
  return collate(rows, copts);
}

}  // namespace biolm::data
