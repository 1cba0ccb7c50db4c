#include "biolm/train/instruction.h"

#include "biolm/core/error.h"

namespace biolm::train {
namespace {

using Kind = PromptSegment::Kind;

PromptSegment text(std::string t, bool trainable = false) { return {Kind::Text, std::move(t), trainable}; }

void check_turns(const Conversation& c, const std::string& source, int64_t record) {
  if (c.turns.empty()) throw DataError::at_record(source, record, "turns", "the conversation has no turns");
  for (size_t i = 0; i < c.turns.size(); ++i) {
    const Role expected = i % 2 == 0 ? Role::User : Role::Assistant;
    if (c.turns[i].role != expected) {
      throw DataError::at_record(source, record, "turns",
                                 "turn " + std::to_string(i) + " should be " +
                                     (expected == Role::User ? "user" : "assistant") +
                                     " (turns alternate user/assistant, starting with user)");
    }
  }
}

}  // namespace

PromptFormat parse_prompt_format(const std::string& name, const std::string& key) {
  if (name == "alpaca") return PromptFormat::Alpaca;
  if (name == "chatml") return PromptFormat::ChatML;
  if (name == "llama2" || name == "llama2-chat") return PromptFormat::Llama2Chat;
  throw ConfigError(key, "expected alpaca|chatml|llama2-chat, found '" + name + "'");
}

std::vector<PromptSegment> render(PromptFormat format, const Conversation& c, const std::string& source,
                                  int64_t record) {
  check_turns(c, source, record);
  std::vector<PromptSegment> out;
  switch (format) {
    case PromptFormat::Alpaca: {
      // Taori et al. 2023, Stanford Alpaca's PROMPT_DICT.
      std::string head = c.context.empty()
                             ? "Below is an instruction that describes a task. Write a response that appropriately "
                               "completes the request.\n\n"
                             : "Below is an instruction that describes a task, paired with an input that provides "
                               "further context. Write a response that appropriately completes the request.\n\n";
      for (size_t i = 0; i < c.turns.size(); ++i) {
        const auto& t = c.turns[i];
        if (t.role == Role::User) {
          std::string prompt = (i == 0 ? head : std::string("\n\n")) + "### Instruction:\n" + t.content + "\n\n";
          if (i == 0 && !c.context.empty()) prompt += "### Input:\n" + c.context + "\n\n";
          out.push_back(text(prompt + "### Response:\n"));
        } else {
          out.push_back(text(t.content, true));
          out.push_back({Kind::Eos, "", true});
        }
      }
      break;
    }
    case PromptFormat::ChatML: {
      if (!c.system.empty()) out.push_back(text("<|im_start|>system\n" + c.system + "<|im_end|>\n"));
      for (const auto& t : c.turns) {
        if (t.role == Role::User) {
          out.push_back(text("<|im_start|>user\n" + t.content + "<|im_end|>\n"));
        } else {
          out.push_back(text("<|im_start|>assistant\n"));
          out.push_back(text(t.content + "<|im_end|>", true));
          out.push_back(text("\n"));
        }
      }
      break;
    }
    case PromptFormat::Llama2Chat: {
      // Touvron et al. 2023; Meta's llama/generation.py chat_completion.
      for (size_t i = 0; i < c.turns.size(); ++i) {
        const auto& t = c.turns[i];
        if (t.role == Role::User) {
          std::string user = t.content;
          if (i == 0 && !c.system.empty()) user = "<<SYS>>\n" + c.system + "\n<</SYS>>\n\n" + user;
          out.push_back({Kind::Bos, "", false});
          out.push_back(text("[INST] " + user + " [/INST]"));
        } else {
          out.push_back(text(" " + t.content + " ", true));
          out.push_back({Kind::Eos, "", true});
        }
      }
      break;
    }
  }
  return out;
}

TokenizedExample tokenize_segments(const tokenize::Tokenizer& tokenizer, const std::vector<PromptSegment>& segments,
                                   int64_t max_len) {
  TokenizedExample ex;
  for (const auto& seg : segments) {
    std::vector<int64_t> ids;
    if (seg.kind == Kind::Text) {
      ids = tokenizer.encode(seg.text, /*add_special=*/false).ids;
    } else {
      const auto& id = seg.kind == Kind::Bos ? tokenizer.special().bos : tokenizer.special().eos;
      BIOLM_CHECK(id.has_value(), ConfigError, "data.prompt_format",
                  std::string("the format needs the tokenizer's ") + (seg.kind == Kind::Bos ? "BOS" : "EOS") +
                      " token, which it does not define");
      ids = {*id};
    }
    for (auto id : ids) {
      ex.input_ids.push_back(id);
      ex.labels.push_back(seg.trainable ? id : data::kIgnoreIndex);
    }
  }
  if (max_len > 0 && static_cast<int64_t>(ex.input_ids.size()) > max_len) {
    ex.input_ids.resize(static_cast<size_t>(max_len));
    ex.labels.resize(static_cast<size_t>(max_len));
  }
  return ex;
}

torch::Tensor segment_attention_mask(const torch::Tensor& segment_ids, bool causal) {
  BIOLM_CHECK(segment_ids.dim() == 2, ShapeError, "segment_attention_mask", "segment_ids must be (B,T)");
  const auto q = segment_ids.unsqueeze(2);  // (B,T,1)
  const auto k = segment_ids.unsqueeze(1);  // (B,1,T)
  auto allowed = q.eq(k).logical_and(q.ne(0));  // (B,T,T)
  if (causal) {
    const int64_t T = segment_ids.size(1);
    allowed = allowed.logical_and(torch::ones({T, T}, torch::dtype(torch::kBool).device(segment_ids.device())).tril());
  }
  return allowed.unsqueeze(1);  // (B,1,T,T)
}

}  // namespace biolm::train
