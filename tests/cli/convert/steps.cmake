# Steps of the `biolm convert` command-line tests (run with cmake -P from tests/cli/convert.cmake).
#   -DBIOLM=<exe> -DDIR=<work dir of one model type> -DIDS=2,7,11 -DSTEP=round_trip|merge
# round_trip: DIR/model -> to-hf DIR/hf -> from-hf --strict DIR/back; the logits of all three
#             (DIR/model.json, DIR/ours.json, DIR/back.json) must be identical, byte for byte.
# export:     DIR (a model directory) -> to-hf DIR_hf; DIR.json = logits of the export.
# bf16:       DIR/model -> to-hf --dtype bf16 DIR/hf_bf16; DIR/bf16.json = logits of that file.
# merge:      DIR/lora -> to-hf --merge DIR/lora_hf and -> adapter DIR/peft; DIR/lora.json = logits
#             of the unmerged LoRA model (compared by tools/hf_reference.py with DIR/lora_hf, and
#             with DIR/hf + the PEFT adapter DIR/peft, by the tests that follow).
function(run)
  execute_process(COMMAND ${BIOLM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ biolm ${ARGN}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "biolm exited with ${rc}: ${err}")
  endif()
endfunction()

if(STEP STREQUAL "round_trip")
  file(REMOVE_RECURSE ${DIR}/hf ${DIR}/back)
  run(convert to-hf ${DIR}/model ${DIR}/hf)
  run(convert logits ${DIR}/hf --ids ${IDS} --out ${DIR}/ours.json)
  run(convert from-hf ${DIR}/hf ${DIR}/back --strict)
  run(convert logits ${DIR}/back --ids ${IDS} --out ${DIR}/back.json)
  run(convert logits ${DIR}/model --ids ${IDS} --out ${DIR}/model.json)
  file(READ ${DIR}/model.json model)
  file(READ ${DIR}/ours.json ours)
  file(READ ${DIR}/back.json back)
  if(NOT model STREQUAL ours OR NOT ours STREQUAL back)
    message(FATAL_ERROR "logits differ between the model directory, its HF export and the re-import")
  endif()
  message("round trip: identical logits")
elseif(STEP STREQUAL "export")
  # DIR is a model directory: export it to DIR_hf and write our logits to DIR.json.
  file(REMOVE_RECURSE ${DIR}_hf)
  run(convert to-hf ${DIR} ${DIR}_hf)
  run(convert logits ${DIR}_hf --ids ${IDS} --out ${DIR}.json)
  message("export: done")
elseif(STEP STREQUAL "bf16")
  # DIR/model -> to-hf --dtype bf16 DIR/hf_bf16; DIR/bf16.json = our logits from the bf16 file.
  file(REMOVE_RECURSE ${DIR}/hf_bf16)
  run(convert to-hf ${DIR}/model ${DIR}/hf_bf16 --dtype bf16)
  run(convert logits ${DIR}/hf_bf16 --ids ${IDS} --out ${DIR}/bf16.json)
  file(READ ${DIR}/bf16.json bf16)
  file(READ ${DIR}/model.json f32)
  if(bf16 STREQUAL f32)
    message(FATAL_ERROR "bf16 weights gave the float32 logits: the dtype was not applied")
  endif()
  message("bf16: done")
elseif(STEP STREQUAL "merge")
  file(REMOVE_RECURSE ${DIR}/lora_hf)
  file(REMOVE_RECURSE ${DIR}/peft)
  run(convert to-hf ${DIR}/lora ${DIR}/lora_hf --merge)
  run(convert adapter ${DIR}/lora ${DIR}/peft --base-hf org/tiny)
  run(convert logits ${DIR}/lora --ids ${IDS} --out ${DIR}/lora.json)
  run(convert logits ${DIR}/model --ids ${IDS} --out ${DIR}/model.json)
  file(READ ${DIR}/lora.json lora)
  file(READ ${DIR}/model.json base)
  if(lora STREQUAL base)
    message(FATAL_ERROR "the LoRA adapter does not change the logits; the merge test would prove nothing")
  endif()
  message("merge: exported")
else()
  message(FATAL_ERROR "unknown STEP '${STEP}'")
endif()
