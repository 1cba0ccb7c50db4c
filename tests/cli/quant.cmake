# QLoRA through the command line (issue #21): tests/cli/scripts/qlora_finetune.sh fine-tunes the NER
# demo with model.quantize=nf4 + LoRA and checks the 4-bit model directory, eval = finetune, exact
# resume and the refusals of full fine-tuning and pretraining on a quantized base.
add_test(NAME cli::qlora_finetune
  COMMAND /bin/sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/scripts/qlora_finetune.sh ${BIOLM_EXE} ${cli_out}/qlora
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::qlora_finetune PROPERTIES PASS_REGULAR_EXPRESSION "QLORA_FINETUNE_OK")
