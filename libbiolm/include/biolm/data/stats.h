// biolm/data/stats.h: counts over files read with any reader (`biolm data stats`).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "biolm/data/io.h"

namespace biolm::data {

/// The format names `biolm data stats --format` takes.
const std::vector<std::string>& stats_formats();

/// One JSON object of counts over `paths` read as `format` (documents or examples, sentences,
/// tokens, entities/relations per type, labels per class, skipped records). Throws ConfigError
/// on an unknown format and DataError (file:line) on a bad record unless opts skips.
nlohmann::ordered_json dataset_stats(const std::string& format, const std::vector<std::string>& paths,
                                     const ReaderOptions& opts = {});

}  // namespace biolm::data
