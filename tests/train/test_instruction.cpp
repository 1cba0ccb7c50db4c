// train/instruction: prompt formats, response-only labels (token by token), packing (data::pack_rows
// and collate, the rows the instruct task trains on) and the segment attention mask.
#include <catch2/catch.hpp>

#include "../peft/tiny_model.h"
#include "biolm/core/error.h"
#include "biolm/data/collate.h"
#include "biolm/data/features.h"
#include "biolm/train/instruction.h"
#include "support/test_util.h"

using namespace biolm;

namespace {

// One token per byte (id = byte + 3); 0 pad, 1 bos, 2 eos. Enough to check masks character by
// character.
class ByteTokenizer : public tokenize::Tokenizer {
 public:
  ByteTokenizer() { special_.pad = 0, special_.bos = 1, special_.eos = 2; }
  tokenize::Encoding encode(std::string_view text, bool add_special) const override {
    tokenize::Encoding e;
    if (add_special) e.ids.push_back(1);
    for (size_t i = 0; i < text.size(); ++i) {
      e.ids.push_back(static_cast<unsigned char>(text[i]) + 3);
      e.offsets.emplace_back(i, i + 1);
      e.word_ids.push_back(-1);
    }
    return e;
  }
  std::string decode(const std::vector<int64_t>& ids, bool) const override {
    std::string s;
    for (auto id : ids) s += id == 1 ? std::string("<s>") : id == 2 ? std::string("</s>") : std::string(1, char(id - 3));
    return s;
  }
  int64_t vocab_size() const override { return 259; }
  std::optional<int64_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::string id_to_token(int64_t id) const override { return decode({id}, false); }
  const tokenize::SpecialTokens& special() const override { return special_; }
  std::string kind() const override { return "bytes"; }
  std::string fingerprint() const override { return "bytes-v1"; }
  void save(const std::filesystem::path&) const override {}
  tokenize::Encoding encode_words(const std::vector<std::string>&, bool) const override { return {}; }

 private:
  tokenize::SpecialTokens special_;
};

// The rendered text, and the text of the labelled tokens only ('_' for masked positions).
std::pair<std::string, std::string> show(const ByteTokenizer& tok, const train::TokenizedExample& ex) {
  std::string all, trained;
  for (size_t i = 0; i < ex.input_ids.size(); ++i) {
    const auto piece = tok.decode({ex.input_ids[i]}, false);
    all += piece;
    if (ex.labels[i] == data::kIgnoreIndex) {
      trained += std::string(piece.size(), '_');
    } else {
      REQUIRE(ex.labels[i] == ex.input_ids[i]);
      trained += piece;
    }
  }
  return {all, trained};
}

std::string mask_of(const std::string& all, const std::vector<std::pair<std::string, bool>>& parts) {
  std::string out;
  for (const auto& [text, trained] : parts) out += trained ? text : std::string(text.size(), '_');
  REQUIRE(out.size() == all.size());
  return out;
}

train::Conversation two_turns() {
  train::Conversation c;
  c.system = "Be brief.";
  c.turns = {{train::Role::User, "Q1?"}, {train::Role::Assistant, "A1."}, {train::Role::User, "Q2?"},
             {train::Role::Assistant, "A2."}};
  return c;
}

}  // namespace

TEST_CASE("ChatML: labels only on assistant content and <|im_end|>, token by token", "[train][instruction]") {
  ByteTokenizer tok;
  const auto ex = train::tokenize_segments(tok, train::render(train::PromptFormat::ChatML, two_turns()));
  const auto [all, trained] = show(tok, ex);
  const std::string sys = "<|im_start|>system\nBe brief.<|im_end|>\n";
  const std::string u1 = "<|im_start|>user\nQ1?<|im_end|>\n<|im_start|>assistant\n";
  const std::string u2 = "\n<|im_start|>user\nQ2?<|im_end|>\n<|im_start|>assistant\n";
  CHECK(all == sys + u1 + "A1.<|im_end|>" + u2 + "A2.<|im_end|>\n");
  CHECK(trained == mask_of(all, {{sys + u1, false}, {"A1.<|im_end|>", true}, {u2, false}, {"A2.<|im_end|>", true},
                                 {"\n", false}}));
}

TEST_CASE("LLaMA-2 chat: BOS/EOS ids, system block, labels on ' answer ' + </s>", "[train][instruction]") {
  ByteTokenizer tok;
  const auto ex = train::tokenize_segments(tok, train::render(train::PromptFormat::Llama2Chat, two_turns()));
  const auto [all, trained] = show(tok, ex);
  const std::string p1 = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nQ1? [/INST]";
  const std::string p2 = "<s>[INST] Q2? [/INST]";
  CHECK(all == p1 + " A1. </s>" + p2 + " A2. </s>");
  CHECK(ex.input_ids.front() == 1);
  CHECK(ex.input_ids.back() == 2);
  CHECK(ex.labels.back() == 2);  // the model learns to stop
  CHECK(trained == mask_of(all, {{p1, false}, {" A1. </s>", true}, {p2, false}, {" A2. </s>", true}}));
  // Counted exactly: " A1. " + eos and " A2. " + eos.
  int64_t n = 0;
  for (auto l : ex.labels) n += l != data::kIgnoreIndex;
  CHECK(n == 12);
}

TEST_CASE("Alpaca: with and without input, bad turn order is a DataError", "[train][instruction]") {
  ByteTokenizer tok;
  train::Conversation c;
  c.context = "aspirin";
  c.turns = {{train::Role::User, "Name the class."}, {train::Role::Assistant, "NSAID"}};
  const auto ex = train::tokenize_segments(tok, train::render(train::PromptFormat::Alpaca, c));
  const auto [all, trained] = show(tok, ex);
  const std::string prompt =
      "Below is an instruction that describes a task, paired with an input that provides further context. Write a "
      "response that appropriately completes the request.\n\n### Instruction:\nName the class.\n\n### Input:\naspirin"
      "\n\n### Response:\n";
  CHECK(all == prompt + "NSAID</s>");
  CHECK(trained == mask_of(all, {{prompt, false}, {"NSAID</s>", true}}));
  c.context.clear();
  const auto ex2 = train::tokenize_segments(tok, train::render(train::PromptFormat::Alpaca, c));
  CHECK(show(tok, ex2).first.rfind("Below is an instruction that describes a task. Write", 0) == 0);
  const auto cut = train::tokenize_segments(tok, train::render(train::PromptFormat::Alpaca, c), 10);
  CHECK(cut.input_ids.size() == 10);

  train::Conversation bad;
  bad.turns = {{train::Role::Assistant, "hi"}};
  try {
    train::render(train::PromptFormat::ChatML, bad, "chat.jsonl", 4);
    FAIL("must throw");
  } catch (const DataError& e) {
    CHECK(e.record() == 4);
    CHECK(e.field() == "turns");
  }
  CHECK_THROWS_AS(train::parse_prompt_format("vicuna"), ConfigError);
}

TEST_CASE("packing (data::pack_rows + collate): exact tensors, boundary labels masked, no attention across examples",
          "[train][instruction]") {
  auto example = [](std::vector<int64_t> ids, std::vector<int64_t> labels, int64_t index) {
    data::Features f;
    f.input_ids = std::move(ids);
    f.labels = std::move(labels);
    f.example_index = index;
    return f;
  };
  const std::vector<data::Features> exs = {example({10, 11, 12}, {-100, 11, 12}, 0), example({20, 21}, {20, 21}, 1),
                                           example({30, 31, 32, 33}, {-100, -100, 32, 33}, 2)};
  const auto rows = data::pack_rows(exs, 6);
  REQUIRE(rows.size() == 2);  // ex0 + ex1 (5 tokens) do not leave room for ex2 (4)
  data::CollateOptions co;
  co.pad_id = 0;
  const auto b = data::collate(rows, co);
  // Row 0: ex0 + ex1 (5 tokens); row 1: ex2 (4 tokens, 1 pad: collate pads to the longest row).
  // Padding is segment -1; positions restart at 0 in every example.
  CHECK(torch::equal(b.at("input_ids"), torch::tensor({{10, 11, 12, 20, 21}, {30, 31, 32, 33, 0}}, torch::kLong)));
  CHECK(torch::equal(b.at("labels"), torch::tensor({{-100, 11, 12, -100, 21}, {-100, -100, 32, 33, -100}}, torch::kLong)));
  CHECK(torch::equal(b.at("segment_ids"), torch::tensor({{1, 1, 1, 2, 2}, {1, 1, 1, 1, -1}}, torch::kLong)));
  CHECK(torch::equal(b.at("position_ids"), torch::tensor({{0, 1, 2, 0, 1}, {0, 1, 2, 3, 0}}, torch::kLong)));
  CHECK(torch::equal(b.at("attention_mask"), torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 1, 0}}, torch::kLong)));
  CHECK(b.n_target_tokens == 5);

  // An example longer than a row, an empty one, or one whose labels do not match: a DataError
  // naming the example.
  try {
    data::pack_rows({example({1, 2, 3, 4, 5, 6, 7}, {1, 2, 3, 4, 5, 6, 7}, 4)}, 6);
    FAIL("must throw");
  } catch (const DataError& e) {
    CHECK(e.record() == 4);
    CHECK(e.field() == "input_ids");
  }
  CHECK_THROWS_AS(data::pack_rows({example({}, {}, 0)}, 6), DataError);
  CHECK_THROWS_AS(data::pack_rows({example({1, 2}, {1}, 0)}, 6), DataError);

  const auto m = train::segment_attention_mask(b.at("segment_ids"), /*causal=*/true);
  REQUIRE(m.sizes() == torch::IntArrayRef({2, 1, 5, 5}));
  CHECK(m[0][0][4][3].item<bool>());        // ex1 token 1 sees ex1 token 0
  CHECK_FALSE(m[0][0][3][2].item<bool>());  // ex1 never sees ex0
  CHECK_FALSE(m[0][0][1][2].item<bool>());  // causal
  CHECK_FALSE(m[1][0][4][3].item<bool>());  // padding sees no example token
  CHECK_FALSE(m[1][0][3][4].item<bool>());  // and no example token sees padding

  // A model honouring segment_ids gives each packed example exactly its standalone output.
  torch::manual_seed(2);
  test::TinyModel model(40, 8, 4, 2);
  model.eval();
  torch::NoGradGuard ng;
  const auto packed = model.logits(b);
  auto alone = [&](const std::vector<int64_t>& ids) {
    data::Batch one;
    one.tensors["input_ids"] = torch::tensor(ids, torch::kLong).unsqueeze(0);
    return model.logits(one)[0];
  };
  BIOLM_REQUIRE_CLOSE(packed[0].narrow(0, 0, 3), alone({10, 11, 12}), 1e-5);
  BIOLM_REQUIRE_CLOSE(packed[0].narrow(0, 3, 2), alone({20, 21}), 1e-5);
  BIOLM_REQUIRE_CLOSE(packed[1].narrow(0, 0, 4), alone({30, 31, 32, 33}), 1e-5);
  // Without segment_ids the second example does see the first (the check above can fail).
  data::Batch leaky = b;
  leaky.tensors.erase("segment_ids");
  CHECK(test::max_abs_diff(model.logits(leaky)[0].narrow(0, 3, 2), alone({20, 21})).max_abs > 1e-4);
}
