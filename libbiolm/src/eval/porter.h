// The Porter stemmer exactly as NLTK 3.x runs it (nltk.stem.porter.PorterStemmer(), default mode
// NLTK_EXTENSIONS), which rouge-score applies with use_stemmer=True. Internal to libbiolm/src/eval.
#pragma once

#include <string>

namespace biolm::eval::detail {

/// PorterStemmer().stem(word) for a word of ASCII letters and digits (what rouge-score's
/// tokenizer produces); the NLTK irregular-forms pool included.
std::string porter_stem(const std::string& word);

}  // namespace biolm::eval::detail
