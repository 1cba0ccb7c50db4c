# tests/parity/peft_driver.cmake: the test driver of tests/parity/test_training.py,
# `biolm-train-step` (one Trainer step on given micro-batches, gradients and updated weights
# written out), built next to `biolm` in bin/ where the test looks for it. Included from
# tests/parity/CMakeLists.txt; not installed.
add_executable(biolm_parity_train_step ${CMAKE_CURRENT_LIST_DIR}/train_step.cpp)
set_target_properties(biolm_parity_train_step PROPERTIES OUTPUT_NAME biolm-train-step
  RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
target_link_libraries(biolm_parity_train_step PRIVATE biolm::biolm)
biolm_set_warnings(biolm_parity_train_step)
biolm_use_pch(biolm_parity_train_step)

# `biolm-quant-dump` (tests/parity/test_quant.py): our NF4 / FP4 / int8 quantization of every
# tensor of a safetensors file, dumped for a byte-for-byte comparison with bitsandbytes.
add_executable(biolm_parity_quant_dump ${CMAKE_CURRENT_LIST_DIR}/quant_dump.cpp)
set_target_properties(biolm_parity_quant_dump PROPERTIES OUTPUT_NAME biolm-quant-dump
  RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
target_link_libraries(biolm_parity_quant_dump PRIVATE biolm::biolm)
biolm_set_warnings(biolm_parity_quant_dump)
biolm_use_pch(biolm_parity_quant_dump)
