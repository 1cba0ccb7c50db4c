// Porter (1980) "An algorithm for suffix stripping", as nltk/stem/porter.py (NLTK 3.10,
// mode NLTK_EXTENSIONS) implements it; each function mirrors the NLTK method of the same name.
// Checked against NLTK through rouge-score in tests/parity/test_metrics.py.
#include "porter.h"

#include <functional>
#include <map>
#include <vector>

namespace biolm::eval::detail {
namespace {

bool vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

bool ends_with(const std::string& w, const std::string& s) {
  return w.size() >= s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0;
}

std::string drop(const std::string& w, size_t n) { return w.substr(0, w.size() - n); }

// _is_consonant: a 'y' run is resolved from the letter before it.
bool is_consonant(const std::string& w, size_t i) {
  if (vowel(w[i])) return false;
  if (w[i] == 'y') {
    bool negate = false;
    while (i > 0 && w[i] == 'y') {
      negate = !negate;
      --i;
    }
    return (!vowel(w[i])) != negate;
  }
  return true;
}

// _consonant_flags / _measure: m in [C](VC){m}[V].
std::vector<bool> consonant_flags(const std::string& w) {
  std::vector<bool> f;
  for (size_t i = 0; i < w.size(); ++i) {
    if (vowel(w[i])) {
      f.push_back(false);
    } else if (w[i] == 'y') {
      f.push_back(i == 0 ? true : !f[i - 1]);
    } else {
      f.push_back(true);
    }
  }
  return f;
}

int measure(const std::string& stem) {
  const auto f = consonant_flags(stem);
  int m = 0;
  for (size_t i = 0; i + 1 < f.size(); ++i) m += (!f[i] && f[i + 1]) ? 1 : 0;
  return m;
}

bool positive_measure(const std::string& stem) { return measure(stem) > 0; }

bool contains_vowel(const std::string& stem) {
  for (bool c : consonant_flags(stem)) {
    if (!c) return true;
  }
  return false;
}

bool ends_double_consonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

bool ends_cvc(const std::string& w) {
  const size_t n = w.size();
  return (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) &&
          w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y') ||
         (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1));  // NLTK_EXTENSIONS
}

using Condition = std::function<bool(const std::string&)>;
struct Rule {
  std::string suffix, replacement;
  Condition condition;  // empty = always
};

// _apply_rule_list: the first rule whose suffix matches decides (applied or not).
std::string apply_rules(const std::string& w, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    if (r.suffix == "*d" && ends_double_consonant(w)) {
      const std::string stem = drop(w, 2);
      return (!r.condition || r.condition(stem)) ? stem + r.replacement : w;
    }
    if (ends_with(w, r.suffix)) {
      const std::string stem = drop(w, r.suffix.size());
      return (!r.condition || r.condition(stem)) ? stem + r.replacement : w;
    }
  }
  return w;
}

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return drop(w, 3) + "ie";
  return apply_rules(w, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return drop(w, 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    const std::string stem = drop(w, 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string inter;
  bool ok = false;
  for (const char* suffix : {"ed", "ing"}) {
    if (ends_with(w, suffix)) {
      inter = drop(w, std::string(suffix).size());
      if (contains_vowel(inter)) {
        ok = true;
        break;
      }
    }
  }
  if (!ok) return w;
  const char last = inter.back();
  return apply_rules(inter, {{"at", "ate", {}},
                             {"bl", "ble", {}},
                             {"iz", "ize", {}},
                             {"*d", std::string(1, last),
                              [last](const std::string&) { return last != 'l' && last != 's' && last != 'z'; }},
                             {"", "e", [](const std::string& s) { return measure(s) == 1 && ends_cvc(s); }}});
}

std::string step1c(const std::string& w) {
  return apply_rules(w, {{"y", "i", [](const std::string& s) {
                            return s.size() > 1 && is_consonant(s, s.size() - 1);
                          }}});
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && positive_measure(drop(w, 4))) return step2(drop(w, 4) + "al");
  const Condition pm = positive_measure;
  std::vector<Rule> rules = {
      {"ational", "ate", pm}, {"tional", "tion", pm}, {"enci", "ence", pm}, {"anci", "ance", pm},
      {"izer", "ize", pm},    {"bli", "ble", pm},     {"alli", "al", pm},   {"entli", "ent", pm},
      {"eli", "e", pm},       {"ousli", "ous", pm},   {"ization", "ize", pm}, {"ation", "ate", pm},
      {"ator", "ate", pm},    {"alism", "al", pm},    {"iveness", "ive", pm}, {"fulness", "ful", pm},
      {"ousness", "ous", pm}, {"aliti", "al", pm},    {"iviti", "ive", pm}, {"biliti", "ble", pm},
      {"fulli", "ful", pm},
      // NLTK: the condition is tested on the word minus "ogi" (the stem keeps its 'l').
      {"logi", "log", [w](const std::string&) { return positive_measure(drop(w, 3)); }}};
  return apply_rules(w, rules);
}

std::string step3(const std::string& w) {
  const Condition pm = positive_measure;
  return apply_rules(w, {{"icate", "ic", pm}, {"ative", "", pm}, {"alize", "al", pm}, {"iciti", "ic", pm},
                         {"ical", "ic", pm}, {"ful", "", pm}, {"ness", "", pm}});
}

std::string step4(const std::string& w) {
  const Condition m1 = [](const std::string& s) { return measure(s) > 1; };
  return apply_rules(
      w, {{"al", "", m1},   {"ance", "", m1}, {"ence", "", m1}, {"er", "", m1},  {"ic", "", m1},
          {"able", "", m1}, {"ible", "", m1}, {"ant", "", m1},  {"ement", "", m1}, {"ment", "", m1},
          {"ent", "", m1},
          {"ion", "", [](const std::string& s) { return measure(s) > 1 && !s.empty() && (s.back() == 's' || s.back() == 't'); }},
          {"ou", "", m1},   {"ism", "", m1},  {"ate", "", m1},  {"iti", "", m1}, {"ous", "", m1},
          {"ive", "", m1},  {"ize", "", m1}});
}

std::string step5a(const std::string& w) {
  if (ends_with(w, "e")) {
    const std::string stem = drop(w, 1);
    if (measure(stem) > 1) return stem;
    if (measure(stem) == 1 && !ends_cvc(stem)) return stem;
  }
  return w;
}

std::string step5b(const std::string& w) {
  return apply_rules(w, {{"ll", "l", [w](const std::string&) { return measure(drop(w, 1)) > 1; }}});
}

}  // namespace

std::string porter_stem(const std::string& word) {
  static const std::map<std::string, std::string> kPool = {
      {"sky", "sky"},         {"skies", "sky"},     {"dying", "die"},       {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},     {"innings", "inning"},  {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"}, {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"}};
  std::string stem = word;
  for (auto& c : stem) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  const auto it = kPool.find(stem);
  if (it != kPool.end()) return it->second;
  if (word.size() <= 2) return stem;
  stem = step1a(stem);
  stem = step1b(stem);
  stem = step1c(stem);
  stem = step2(stem);
  stem = step3(stem);
  stem = step4(stem);
  stem = step5a(stem);
  stem = step5b(stem);
  return stem;
}

}  // namespace biolm::eval::detail
