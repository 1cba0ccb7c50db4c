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
