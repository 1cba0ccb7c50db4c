// biolm/data/collate.h: Features rows -> a padded Batch (names as in batch.h), plus the
// pretraining objectives: MLM masking (BERT, Devlin et al. 2019 §3.1: 15 % of tokens chosen,
// of which 80 % -> [MASK], 10 % -> random token, 10 % unchanged; optional whole-word masking)
// and CLM targets.
//
// Padding is dynamic: every tensor is padded to the longest row of the batch (optionally
// rounded up to a multiple), never to a fixed length.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "biolm/data/batch.h"
#include "biolm/data/features.h"

namespace biolm::data {

struct CollateOptions {
  int64_t pad_id = 0;
  int64_t pad_to_multiple_of = 1;
};

/// Emits input_ids, attention_mask, token_type_ids (B,T); labels (B,T) when rows carry token
/// labels, else labels (B) when they carry a sequence label; scores (B) float when they carry a
/// score; start_positions/end_positions (B); segment_ids and position_ids (B,T) for packed rows
/// (positions restart at every document); for multiple choice choice_ids, attention_mask and
/// token_type_ids (B,K,T) and labels (B). n_target_tokens counts labels != -100.
Batch collate(const std::vector<Features>& rows, const CollateOptions& opts = {});

struct MlmOptions {
  double mask_prob = 0.15;    ///< share of maskable tokens (or words) chosen
  double mask_token = 0.8;    ///< of the chosen: replaced by [MASK]
  double random_token = 0.1;  ///< of the chosen: replaced by a random non-special token
  bool whole_word = false;    ///< choose words (Features::word_starts), mask all their pieces
  int64_t mask_id = -1;
  int64_t vocab_size = 0;
  std::vector<int64_t> never_mask;  ///< specials and pad: never chosen, never drawn at random
};
/// Masks one sequence in place; labels get the original id at chosen positions, -100 elsewhere.
void apply_mlm(std::vector<int64_t>& ids, std::vector<int64_t>& labels, const std::vector<uint8_t>& word_starts,
               const MlmOptions& opts, std::mt19937_64& rng);
/// collate() of MLM rows: input_ids masked, labels (B,T). Deterministic in `seed`.
Batch collate_mlm(std::vector<Features> rows, const CollateOptions& copts, const MlmOptions& mopts, uint64_t seed);
/// Causal LM: labels = input_ids (the model shifts), -100 on padding and on the first token of
/// every packed document after the first (it must not be predicted from the previous one).
Batch collate_clm(std::vector<Features> rows, const CollateOptions& copts);

/// splitmix64: derives independent seeds (epoch, batch, rank) from one run seed.
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace biolm::data
