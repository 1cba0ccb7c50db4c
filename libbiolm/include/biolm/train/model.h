// biolm/train/model.h: DEPRECATED forwarding header, kept for one release. The trainable-model
// interface lives in biolm/models/trainable.h (namespace biolm::models); include that instead.
#pragma once

#include "biolm/models/trainable.h"

namespace biolm::train {

using StepOutput = models::StepOutput;          ///< deprecated spelling of models::StepOutput
using TrainableModel = models::TrainableModel;  ///< deprecated spelling of models::TrainableModel

}  // namespace biolm::train
