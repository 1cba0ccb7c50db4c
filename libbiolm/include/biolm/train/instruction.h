// biolm/train/instruction.h: instruction fine-tuning data: prompt formats, response-only labels,
// and the attention mask of packed rows (the rows themselves: data::pack_rows in data/features.h).
//
// A conversation is rendered to segments; each segment is text (or the tokenizer's BOS/EOS) with
// a flag saying whether the model learns to produce it. Segments are tokenised one by one
// (add_special = false) and concatenated, so the label mask is exact at token level: labels equal
// input_ids on assistant responses (and the end marker that closes them) and -100 elsewhere.
// Labels are aligned with input_ids; the model shifts them (predicts token t from tokens < t).
//
// Formats (the templates their authors publish):
//   Alpaca    "Below is an instruction ... ### Instruction:\n{user}\n\n[### Input:\n{context}\n\n]### Response:\n"
//             {assistant}<eos>; later turns add "\n\n### Instruction:\n...### Response:\n".
//   ChatML    "<|im_start|>{role}\n{content}<|im_end|>\n" per message; trained: the assistant
//             content and its "<|im_end|>".
//   Llama2Chat "<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>" and
//             "<s>[INST] {user} [/INST] {assistant} </s>" for later turns; trained: " {assistant} " + </s>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "biolm/data/batch.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::train {

enum class PromptFormat { Alpaca, ChatML, Llama2Chat };
PromptFormat parse_prompt_format(const std::string& name, const std::string& key = "data.prompt_format");

enum class Role { User, Assistant };

struct Turn {
  Role role = Role::User;
  std::string content;
};

struct Conversation {
  std::string system;   ///< optional system prompt (ChatML, LLaMA-2); Alpaca has its fixed preamble
  std::string context;  ///< Alpaca's "input" field for the first instruction; empty otherwise
  std::vector<Turn> turns;  ///< user, assistant, user, assistant, ... (must start with user)
};

struct PromptSegment {
  enum class Kind { Text, Bos, Eos };
  Kind kind = Kind::Text;
  std::string text;
  bool trainable = false;  ///< part of an assistant response: carries a loss
};

/// Throws DataError(source, record, "turns", ...) for an empty conversation or roles that do not
/// alternate user/assistant starting with user.
std::vector<PromptSegment> render(PromptFormat format, const Conversation& conversation,
                                  const std::string& source = "<conversation>", int64_t record = 0);

struct TokenizedExample {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> labels;  ///< -100 except on trainable segments
};

/// Tokenises rendered segments. BOS/EOS need tokenizer.special().bos/eos (DataError otherwise).
/// Examples longer than max_len are truncated at max_len (max_len <= 0: no limit).
TokenizedExample tokenize_segments(const tokenize::Tokenizer& tokenizer, const std::vector<PromptSegment>& segments,
                                   int64_t max_len = 0);

/// (B,1,T,T) bool: true where query t may attend key s: same non-zero segment and, when causal,
/// s <= t. Models turn segment_ids into this mask.
torch::Tensor segment_attention_mask(const torch::Tensor& segment_ids, bool causal);

}  // namespace biolm::train
