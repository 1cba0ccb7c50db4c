// biolm/train/checkpoint.h: atomic, checksummed checkpoint directories.
//
// Layout: <root>/step-00000010/
//   manifest.json   {"format": "biolm-checkpoint", "version": 1, "step": 10,
//                    "files": {"model.safetensors": {"bytes": 1234, "sha256": "<64 hex>"}, ...}}
//   model.safetensors, optimizer.pt, rng.safetensors, trainer_state.json (what the trainer writes; see trainer.h)
// A checkpoint is written into "<root>/.tmp-step-…-<pid>", every file is fsynced, the manifest
// (written last, also fsynced) lists each file's size and SHA-256 (FIPS 180-4), then the directory
// is renamed into place and <root> fsynced: a crash leaves either the old state or the new
// checkpoint, never half of one. A checkpoint is valid when its manifest parses and every listed
// file exists with the listed size and hash. Files may sit in subdirectories (the manifest keys
// are relative paths, "shards/optimizer-rank00001-of-00004.safetensors").
//
// Collective checkpoints (ZeRO shards written by every rank, dist/sharded_checkpoint.h) use the
// two halves: every rank writes into begin_checkpoint's directory (rank 0 creates it, all agree on
// its name through the tag), a barrier, then rank 0 calls finish_checkpoint with the sizes and
// hashes the other ranks computed; a file that is missing or of another size stops the commit.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace biolm::train {

/// SHA-256 of a byte range / of a file's contents, as 64 lowercase hex digits.
std::string sha256_hex(const void* data, size_t size);
std::string sha256_file(const std::filesystem::path& path);

/// Creates the temporary directory, calls write_files(tmp) to fill it, writes the manifest, fsyncs
/// and renames to <root>/step-<step>. An existing checkpoint of the same step is replaced.
/// Returns the final directory.
std::filesystem::path commit_checkpoint(const std::filesystem::path& root, int64_t step,
                                        const std::function<void(const std::filesystem::path&)>& write_files);

/// A file of the temporary directory written by another process: its size and SHA-256 as the
/// writer computed them (rank 0 does not read it again).
struct KnownFile {
  std::string name;  ///< relative to the checkpoint directory
  uint64_t bytes = 0;
  std::string sha256;
};

/// "<root>/.tmp-step-<step>-<tag>" (tag: the writer's pid; for a collective checkpoint rank 0's),
/// created empty. Not collective: rank 0 calls it, the others compute the name with
/// checkpoint_tmp_dir.
std::filesystem::path begin_checkpoint(const std::filesystem::path& root, int64_t step, int64_t tag);
std::filesystem::path checkpoint_tmp_dir(const std::filesystem::path& root, int64_t step, int64_t tag);
/// Writes the manifest of everything under tmp (hashing the files not in `known`; a known file
/// must exist with its size, else CheckpointError naming it and nothing is committed), fsyncs and
/// renames tmp to <root>/step-<step>. Returns the final directory.
std::filesystem::path finish_checkpoint(const std::filesystem::path& root, int64_t step,
                                        const std::filesystem::path& tmp, const std::vector<KnownFile>& known = {});

/// Checks the manifest and every file; throws CheckpointError(file, "", what is wrong). Returns
/// the manifest. hash_shards = false checks only the size of the files under shards/ (a rank
/// resuming from a sharded checkpoint hashes the shard files it reads, dist/sharded_checkpoint.h).
nlohmann::json verify_checkpoint(const std::filesystem::path& dir, bool hash_shards = true);

/// Step directories under root (complete or not), oldest first; temporary directories excluded.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& root);
/// The step a checkpoint directory holds, from its name ("step-00000010" -> 10).
int64_t checkpoint_step(const std::filesystem::path& dir);

/// The newest checkpoint that verifies; invalid ones are logged (warn) with the reason and
/// skipped. nullopt when root holds no checkpoint at all; CheckpointError when it holds some and
/// none is valid.
std::optional<std::filesystem::path> find_latest_valid(const std::filesystem::path& root, bool hash_shards = true);

/// Removes all but the newest keep_last step checkpoints, never the one of step `protect`.
/// Also removes temporary directories left by crashed writers of this or earlier runs.
void prune_checkpoints(const std::filesystem::path& root, int64_t keep_last, std::optional<int64_t> protect);

}  // namespace biolm::train
