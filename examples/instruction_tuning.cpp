// examples/instruction_tuning.cpp: instruction fine-tuning (supervised fine-tuning, SFT) of a
// tiny decoder on Alpaca-format data, then greedy generation on held-out instructions scored
// with ROUGE-L.
//
// Three things make SFT differ from plain language modelling:
//   - a prompt format: the Alpaca template (Taori et al. 2023) wraps each instruction;
//   - loss on the response only: prompt tokens carry label -100, so the model is not trained to
//     produce instructions, only to answer them;
//   - packing: short examples are laid back to back in fixed-length rows; segment_ids keep the
//     attention inside each example and positions restart, so packing changes no example's loss.
//
//   tokenizer (SentencePiece) -> read_alpaca -> train::render (Alpaca) -> tokenize_segments ->
//   pack_examples -> Loader -> causal-LM decoder -> full fine-tuning -> Trainer ->
//   models::generate (greedy) -> eval::corpus_rouge_l -> io::save_model_dir
//
// Run from the repository root:  ./build/bin/example_instruction_tuning [key=value ...]
// Prints one JSON line: {"example":"instruction_tuning","rouge_l":...,"samples":[...],...}
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "biolm/core/host_memory.h"
#include "biolm/config.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/text.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/generate.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/sentencepiece.h"
#include "biolm/train/instruction.h"
#include "biolm/train/trainer.h"
#include "example_args.h"

#if BIOLM_HAS_SENTENCEPIECE  // the SentencePiece trainer is an optional part of libbiolm
using namespace biolm;

// data::read_alpaca gives one user turn (instruction, a blank line, input) and one assistant
// turn; train::render wants the same as a train::Conversation.
train::Conversation to_conversation(const data::InstructionExample& ex, bool with_response) {
  train::Conversation c;
  for (const auto& t : ex.turns) {
    if (t.role == "assistant" && !with_response) break;
    c.turns.push_back({t.role == "user" ? train::Role::User : train::Role::Assistant, t.content});
  }
  return c;
}

int run(const example::Args& args) {
  const auto seed = static_cast<uint64_t>(args.integer("seed"));
  core::seed_all(seed);
  const std::string out = args.str("output");
  std::filesystem::create_directories(out);

  // 1. Reader: Alpaca JSON/JSONL. Without a test file the last `heldout` records are kept
  //    apart. (The synthetic file repeats instruction/input pairs, so most held-out pairs also
  //    occur in training: the score measures format and recall, not generalisation.)
  auto examples = data::read_alpaca(args.str("train"));
  std::vector<data::InstructionExample> test;
  if (!args.str("test").empty()) {
    test = data::read_alpaca(args.str("test"));
  } else {
    const auto n = std::min<size_t>(static_cast<size_t>(args.integer("heldout")), examples.size() / 2);
    test.assign(examples.end() - static_cast<long>(n), examples.end());
    examples.resize(examples.size() - n);
  }

  // 2. Tokenizer: SentencePiece (BPE), learned from the clinical notes plus the rendered
  //    training prompts, so the template's fixed words become one piece each (about 36 pieces
  //    per example; a unigram model this small splits them into ~80); byte fallback turns any
  //    character never seen into byte pieces instead of <unk>. <s> = 1, </s> = 2 (it ends
  //    every response); no pad piece, so <unk> pads (padding is masked anyway).
  const auto format = train::PromptFormat::Alpaca;
  {
    std::ofstream text(out + "/sft_text.txt");
    for (const auto& ex : examples)
      for (const auto& seg : train::render(format, to_conversation(ex, true))) text << seg.text << "\n";
  }
  tokenize::SentencePieceTrainOptions so;
  so.vocab_size = args.integer("vocab_size");
  so.model_type = tokenize::SentencePieceModelType::Bpe;
  so.byte_fallback = true;
  so.hard_vocab_limit = false;
  const auto model_file = tokenize::train_sentencepiece({args.str("corpus"), out + "/sft_text.txt"}, so, out + "/spm");
  const auto tok = tokenize::load_tokenizer(model_file);
  const int64_t pad_id = tok->special().pad.value_or(0);

  // 3. Features: render with the Alpaca template, tokenize segment by segment (labels only on
  //    the response and its </s>), then pack into rows of exactly pack_length tokens.
  const int64_t pack_length = args.integer("pack_length");
  std::vector<train::TokenizedExample> tokenized;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto segments =
        train::render(format, to_conversation(examples[i], true), args.str("train"), static_cast<int64_t>(i));
    tokenized.push_back(train::tokenize_segments(*tok, segments, pack_length));
  }
  const auto packed = train::pack_examples(tokenized, pack_length, pad_id);  // (rows, pack_length) tensors
  // pack_examples returns one Batch holding every row; the Loader wants rows, so each packed
  // row becomes a Features (its real tokens, labels and segment ids; collate pads again and
  // rebuilds the restarting positions from segment_ids).
  std::vector<data::Features> rows;
  for (int64_t r = 0; r < packed.at("input_ids").size(0); ++r) {
    const int64_t n = packed.at("attention_mask")[r].sum().item<int64_t>();
    auto take = [&](const char* name) {
      const auto t = packed.at(name)[r].slice(0, 0, n).contiguous();
      return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
    };
    data::Features f;
    f.input_ids = take("input_ids");
    f.labels = take("labels");
    f.segment_ids = take("segment_ids");
    rows.push_back(std::move(f));
  }
  std::cerr << "packed " << tokenized.size() << " examples into " << rows.size() << " rows of " << pack_length
            << " tokens\n";

  // 4. Loader.
  data::LoaderOptions lo;
  lo.batch_size = args.integer("batch_size");
  lo.seed = seed;
  data::Loader loader(std::make_shared<data::VectorDataset>(rows),
                      [pad_id](std::vector<data::Features>&& batch_rows, uint64_t) {
                        data::CollateOptions co;
                        co.pad_id = pad_id;
                        return data::collate(batch_rows, co);
                      },
                      lo);

  // 5. Model: tiny LLaMA-layout decoder with its LM head (the class itself, since generation
  //    needs a CausalLMModelImpl).
  auto config = models::preset("tiny-decoder");
  config.vocab_size = tok->vocab_size();
  config.pad_token_id = pad_id;
  config.bos_token_id = tok->special().bos;
  config.eos_token_id = tok->special().eos;
  config.hidden_size = 64;
  config.ffn_size = 128;
  config.max_positions = pack_length;
  models::CausalLMModel model(config);

  // 6. Adaptation method: full fine-tuning (LoRA works the same way: see
  //    pubmedqa_lora_decoder.cpp).
  const auto summary = peft::apply(*model, peft::MethodConfig{});

  // 7. Trainer: the loss is averaged over response tokens of the whole step.
  train::TrainConfig tc;
  tc.max_steps = args.integer("steps");
  tc.lr = args.real("lr");
  tc.schedule = train::ScheduleKind::Cosine;
  tc.warmup_steps = tc.max_steps / 10;
  tc.log_every = 50;
  tc.run_dir = out;
  tc.seed = seed;
  train::Trainer trainer(*model, tc);
  trainer.set_lr_scales(summary.lr_scales);
  const auto result = trainer.fit(loader);

  // 8. Evaluation: the prompt alone (template up to "### Response:\n"), greedy decoding until
  //    </s>, ROUGE-L F against the reference answer. One prompt at a time; a batch would be
  //    left-padded with an attention mask.
  models::GenerationOptions go;
  go.max_new_tokens = args.integer("max_new_tokens");
  go.stop_tokens = {*tok->special().eos};
  std::vector<std::string> predictions;
  std::vector<std::vector<std::string>> references;
  nlohmann::json samples = nlohmann::json::array();
  for (size_t i = 0; i < test.size(); ++i) {
    const auto prompt = train::tokenize_segments(*tok, train::render(format, to_conversation(test[i], false)));
    const auto ids = torch::tensor(prompt.input_ids, torch::kInt64).unsqueeze(0);  // (1,T)
    const auto generated = models::generate(*model, ids, torch::Tensor(), go);
    const auto new_tokens = generated.new_tokens[0].slice(0, 0, generated.n_new[0].item<int64_t>()).contiguous();
    const std::string answer =
        tok->decode({new_tokens.data_ptr<int64_t>(), new_tokens.data_ptr<int64_t>() + new_tokens.numel()});
    predictions.push_back(answer);
    references.push_back({test[i].turns.back().content});
    if (samples.size() < 3) samples.push_back({{"prompt", test[i].turns.front().content}, {"output", answer}});
  }
  const double rouge_l = eval::corpus_rouge_l(predictions, references);

  // 9. Save (a causal LM with its tokenizer: ready for generation after load_model_dir).
  io::ModelDirInfo info;
  info.config = config;
  info.task = models::TaskKind::CausalLM;
  info.n_labels = 0;
  info.info = {{"example", "instruction_tuning"}, {"prompt_format", "alpaca"}, {"steps", result.step},
               {"heldout_rouge_l", rouge_l}};
  io::ModelDirSaveOptions save;
  save.tokenizer = tok.get();
  io::save_model_dir(*model, info, out + "/model", save);

  std::cout << nlohmann::json{{"example", "instruction_tuning"}, {"steps", result.step},
                              {"final_loss", result.history.empty() ? 0.0 : result.history.back().loss},
                              {"rouge_l", rouge_l}, {"heldout", test.size()}, {"samples", samples},
                              {"model_dir", out + "/model"}}
                   .dump()
            << "\n";
  return 0;
}

#endif

int main(int argc, char** argv) {
  biolm::core::tune_host_allocator();  // reuse freed tensor memory instead of faulting it in again
#if !BIOLM_HAS_SENTENCEPIECE
  (void)argc;
  (void)argv;
  std::cerr << "example_instruction_tuning: needs libbiolm built with SentencePiece"
               " (-DBIOLM_WITH_SENTENCEPIECE=ON)\n";
  return 1;
#else
  try {
    const example::Args args(argc, argv,
                             {{"train", "data/instruct/train.jsonl"}, {"test", ""}, {"heldout", "20"},
                              {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_instruct"},
                              {"vocab_size", "1000"}, {"pack_length", "256"}, {"steps", "200"},
                              {"batch_size", "8"}, {"lr", "3e-3"}, {"max_new_tokens", "24"}, {"seed", "13"}},
                             "Alpaca-format instruction tuning of a tiny decoder; prints held-out ROUGE-L.");
    return args.help() ? 0 : run(args);
  } catch (const std::exception& e) {
    std::cerr << "example_instruction_tuning: error: " << e.what() << "\n";
    return 1;
  }
#endif
}
