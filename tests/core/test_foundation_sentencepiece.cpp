// The SentencePiece + LibTorch crash (../shared/DESIGN.md, "Traps") must stay fixed: train a
// model in this process, load it, encode and decode, and run LibTorch autograd alongside.
#include <catch2/catch.hpp>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "support/test_util.h"

TEST_CASE("SentencePiece trains, loads and round-trips text in a LibTorch process", "[core][sentencepiece]") {
  biolm::test::TempDir dir("spm");
  std::string corpus;
  const char* lines[] = {
      "The patient was admitted with acute myocardial infarction and chest pain.",
      "Metformin 500 mg twice daily was started for type 2 diabetes mellitus.",
      "No evidence of pneumonia on the chest radiograph.",
      "Serum creatinine rose to 2.1 mg/dL after contrast administration.",
      "IL-6 and TNF-alpha levels were elevated in septic patients.",
  };
  for (int rep = 0; rep < 40; ++rep)
    for (const char* l : lines) corpus += std::string(l) + "\n";
  biolm::test::write_text(dir / "corpus.txt", corpus);

  const auto prefix = (dir / "clinical").string();
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + (dir / "corpus.txt").string() + " --model_prefix=" + prefix +
      " --vocab_size=90 --model_type=unigram --character_coverage=1.0 --minloglevel=2");
  INFO(status.ToString());
  REQUIRE(status.ok());

  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.Load(prefix + ".model").ok());
  REQUIRE(sp.GetPieceSize() == 90);
  const std::string text = "The patient was started on metformin.";
  std::vector<int> ids;
  REQUIRE(sp.Encode(text, &ids).ok());
  REQUIRE(ids.size() > 3);
  std::string back;
  REQUIRE(sp.Decode(ids, &back).ok());
  REQUIRE(back == text);

  // LibTorch autograd in the same process: d/dx sum(x^2 * w) = 2 x w.
  auto x = torch::tensor({1.0, -2.0, 3.0}, torch::requires_grad());
  const auto w = torch::tensor({0.5, 0.25, 2.0});
  (x.pow(2) * w).sum().backward();
  BIOLM_REQUIRE_CLOSE(x.grad(), torch::tensor({1.0, -1.0, 12.0}), 1e-12);
  // Token ids as a tensor, embedded: the two libraries interoperate.
  auto emb = torch::nn::Embedding(90, 4);
  const auto out = emb(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())));
  REQUIRE(out.size(0) == static_cast<int64_t>(ids.size()));
}
