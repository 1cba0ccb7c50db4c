// biolm/io/torch_pickle.h: PyTorch state dicts as torch.save writes them (zip format, PyTorch >=
// 1.6): `pytorch_model.bin` of transformers < 5 and `torch.save(model.state_dict(), path)`.
//
// The archive holds `<root>/data.pkl` (a protocol-2 pickle) and one raw little-endian record per
// storage (`<root>/data/<key>`). The pickle is run by a small restricted machine that knows only
// what a dict of tensors needs: dict / OrderedDict (its `_metadata` state is dropped),
// torch._utils._rebuild_tensor_v2 and _rebuild_parameter, torch.<Type>Storage persistent ids.
// Any other global (a class, a function) is refused by name, so a file cannot run code here, as
// torch.load(weights_only=False) could. LibTorch's own torch::pickle_load is not used: it turns
// collections.OrderedDict into None (unpickler.cpp), which is what torch.save(state_dict()) writes.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>

namespace biolm::io {

/// name -> tensor (CPU, the file's dtype, contiguous). CheckpointError naming the file (and the
/// key or pickle opcode) for anything that is not a zip-format dict of tensors.
std::map<std::string, at::Tensor> read_torch_state_dict(const std::filesystem::path& file);

}  // namespace biolm::io
