# tests/parity/peft_driver.cmake: the test drivers of the parity suite, built next to `biolm` in
# bin/ where the tests look for them. Included from tests/parity/CMakeLists.txt; not installed.
#   biolm-train-step   (test_training.py) one Trainer step on given micro-batches, gradients and
#                      updated weights written out
#   biolm-quant-dump   (test_quant.py) our NF4 / FP4 / int8 quantization of every tensor of a
#                      safetensors file, dumped for a byte-for-byte comparison with bitsandbytes
function(biolm_parity_driver target source output_name)
  add_executable(${target} ${CMAKE_CURRENT_LIST_DIR}/${source})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME ${output_name}
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
  target_link_libraries(${target} PRIVATE biolm::biolm)
  biolm_set_warnings(${target})
  biolm_use_pch(${target})
endfunction()

biolm_parity_driver(biolm_parity_train_step train_step.cpp biolm-train-step)
biolm_parity_driver(biolm_parity_quant_dump quant_dump.cpp biolm-quant-dump)
