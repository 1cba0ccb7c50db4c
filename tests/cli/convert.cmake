# biolm convert: tiny random models of every architecture go to Hugging Face directories and back;
# their logits are checked against tools/hf_reference.py, an independent float64 forward pass
# (python3 + torch, no transformers), at 1e-4. See docs/hf.md.
set(convert_out ${cli_out}/convert)
set(convert_ids 2,7,11,3,19,5,23,1)

# A python3 that has torch (the reference tests skip with 77 when there is none).
set(BIOLM_REFERENCE_PYTHON "" CACHE STRING "python3 with torch for tools/hf_reference.py (empty: search)")
if(NOT BIOLM_REFERENCE_PYTHON)
  find_program(_biolm_py_path python3)
  foreach(py ${_biolm_py_path} /usr/bin/python3)
    if(py AND NOT BIOLM_REFERENCE_PYTHON)
      execute_process(COMMAND ${py} -c "import torch" RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
      if(_rc EQUAL 0)
        set(BIOLM_REFERENCE_PYTHON ${py})
      endif()
    endif()
  endforeach()
  if(NOT BIOLM_REFERENCE_PYTHON)
    set(BIOLM_REFERENCE_PYTHON ${_biolm_py_path})
  endif()
endif()

# Fixture: the model directories (a hidden Catch2 case of test_hf writes them).
add_test(NAME cli::convert_make_models COMMAND $<TARGET_FILE:test_hf> "[.make_hf_models]")
set_tests_properties(cli::convert_make_models PROPERTIES
  ENVIRONMENT "BIOLM_HF_OUT=${convert_out}" FIXTURES_SETUP biolm_convert_models)

foreach(type bert megatron-bert gpt2 llama mistral)
  add_test(NAME cli::convert_round_trip_${type}
    COMMAND ${CMAKE_COMMAND} -DBIOLM=${BIOLM_EXE} -DDIR=${convert_out}/${type} -DIDS=${convert_ids}
            -DSTEP=round_trip -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/convert/steps.cmake)
  set_tests_properties(cli::convert_round_trip_${type} PROPERTIES
    FIXTURES_REQUIRED biolm_convert_models FIXTURES_SETUP biolm_convert_${type}
    PASS_REGULAR_EXPRESSION "round trip: identical logits")
  if(BIOLM_REFERENCE_PYTHON)
    add_test(NAME cli::convert_reference_${type}
      COMMAND ${BIOLM_REFERENCE_PYTHON} ${PROJECT_SOURCE_DIR}/tools/hf_reference.py ${convert_out}/${type}/hf
              --ids ${convert_ids} --compare ${convert_out}/${type}/ours.json --tol 1e-4)
    set_tests_properties(cli::convert_reference_${type} PROPERTIES
      FIXTURES_REQUIRED biolm_convert_${type} SKIP_RETURN_CODE 77 PASS_REGULAR_EXPRESSION "\"ok\": true")
  endif()
endforeach()
set_tests_properties(cli::convert_round_trip_bert PROPERTIES
  PASS_REGULAR_EXPRESSION "\"tokenizer\":true.*\"tokenizer\":true.*round trip: identical logits")

# bfloat16 export (llama): the reference reads the same bf16 weights, so 1e-4 still holds.
add_test(NAME cli::convert_bf16
  COMMAND ${CMAKE_COMMAND} -DBIOLM=${BIOLM_EXE} -DDIR=${convert_out}/llama -DIDS=${convert_ids}
          -DSTEP=bf16 -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/convert/steps.cmake)
set_tests_properties(cli::convert_bf16 PROPERTIES FIXTURES_REQUIRED "biolm_convert_models;biolm_convert_llama"
  FIXTURES_SETUP biolm_convert_bf16 PASS_REGULAR_EXPRESSION "\"dtype\":\"bfloat16\".*bf16: done")
if(BIOLM_REFERENCE_PYTHON)
  add_test(NAME cli::convert_reference_bf16
    COMMAND ${BIOLM_REFERENCE_PYTHON} ${PROJECT_SOURCE_DIR}/tools/hf_reference.py ${convert_out}/llama/hf_bf16
            --ids ${convert_ids} --compare ${convert_out}/llama/bf16.json --tol 1e-4)
  set_tests_properties(cli::convert_reference_bf16 PROPERTIES
    FIXTURES_REQUIRED biolm_convert_bf16 SKIP_RETURN_CODE 77 PASS_REGULAR_EXPRESSION "\"ok\": true")
endif()

# Heads: BertForSequenceClassification (pooler + classifier), MegatronBertForTokenClassification,
# GPT2ForSequenceClassification (score on the last token, no bias), LlamaForQuestionAnswering
# (body under "transformer."), MistralForTokenClassification (score with bias).
foreach(head bert-sequence_classification megatron-bert-token_classification gpt2-sequence_classification
        llama-span_qa mistral-token_classification)
  add_test(NAME cli::convert_head_${head}
    COMMAND ${CMAKE_COMMAND} -DBIOLM=${BIOLM_EXE} -DDIR=${convert_out}/heads/${head} -DIDS=${convert_ids}
            -DSTEP=export -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/convert/steps.cmake)
  set_tests_properties(cli::convert_head_${head} PROPERTIES
    FIXTURES_REQUIRED biolm_convert_models FIXTURES_SETUP biolm_convert_head_${head} PASS_REGULAR_EXPRESSION "export: done")
  if(BIOLM_REFERENCE_PYTHON)
    add_test(NAME cli::convert_reference_head_${head}
      COMMAND ${BIOLM_REFERENCE_PYTHON} ${PROJECT_SOURCE_DIR}/tools/hf_reference.py ${convert_out}/heads/${head}_hf
              --ids ${convert_ids} --compare ${convert_out}/heads/${head}.json --tol 1e-4)
    set_tests_properties(cli::convert_reference_head_${head} PROPERTIES
      FIXTURES_REQUIRED biolm_convert_head_${head} SKIP_RETURN_CODE 77 PASS_REGULAR_EXPRESSION "\"ok\": true")
  endif()
endforeach()

# LoRA (llama, gpt2 with q and v adapters): refused without --merge, naming the way out; the
# merged export and the PEFT adapter on the base export both equal the unmerged model.
add_test(NAME cli::convert_lora_refused COMMAND ${BIOLM_EXE} convert to-hf ${convert_out}/llama/lora ${convert_out}/llama/refused)
set_tests_properties(cli::convert_lora_refused PROPERTIES FIXTURES_REQUIRED biolm_convert_models
  PASS_REGULAR_EXPRESSION "carries lora adapters: pass --merge .*biolm convert adapter")
foreach(type llama gpt2)
  add_test(NAME cli::convert_lora_${type}
    COMMAND ${CMAKE_COMMAND} -DBIOLM=${BIOLM_EXE} -DDIR=${convert_out}/${type} -DIDS=${convert_ids}
            -DSTEP=merge -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/convert/steps.cmake)
  set_tests_properties(cli::convert_lora_${type} PROPERTIES
    FIXTURES_REQUIRED biolm_convert_models FIXTURES_SETUP biolm_convert_lora_${type})
  if(BIOLM_REFERENCE_PYTHON)
    add_test(NAME cli::convert_reference_lora_merged_${type}
      COMMAND ${BIOLM_REFERENCE_PYTHON} ${PROJECT_SOURCE_DIR}/tools/hf_reference.py ${convert_out}/${type}/lora_hf
              --ids ${convert_ids} --compare ${convert_out}/${type}/lora.json --tol 1e-4)
    add_test(NAME cli::convert_reference_peft_${type}
      COMMAND ${BIOLM_REFERENCE_PYTHON} ${PROJECT_SOURCE_DIR}/tools/hf_reference.py ${convert_out}/${type}/hf
              --peft ${convert_out}/${type}/peft --ids ${convert_ids} --compare ${convert_out}/${type}/lora.json --tol 1e-4)
    set_tests_properties(cli::convert_reference_lora_merged_${type} cli::convert_reference_peft_${type} PROPERTIES
      FIXTURES_REQUIRED "biolm_convert_lora_${type};biolm_convert_${type}" SKIP_RETURN_CODE 77
      PASS_REGULAR_EXPRESSION "\"ok\": true")
  endif()
endforeach()
# adapter_config.json as printed: llama keeps q_proj and v_proj at rank 4; GPT-2's q and v
# adapters fuse into one c_attn adapter of rank 2 x 4 with the same scaling (alpha 2 x 8).
set_tests_properties(cli::convert_lora_llama PROPERTIES PASS_REGULAR_EXPRESSION
  "\"lora_alpha\":8\\.0.*\"r\":4,\"target_modules\":\\[\"q_proj\",\"v_proj\"\\],\"task_type\":\"CAUSAL_LM\".*merge: exported")
set_tests_properties(cli::convert_lora_gpt2 PROPERTIES PASS_REGULAR_EXPRESSION
  "\"lora_alpha\":16\\.0.*\"r\":8,\"target_modules\":\\[\"c_attn\"\\],\"task_type\":\"CAUSAL_LM\".*merge: exported")

# from-hf into another head: the classifier's tensors fit token classification, the pooler does
# not belong there (reported; --strict refuses with exit 4, naming it); --labels are kept.
add_test(NAME cli::convert_from_hf_other_head
  COMMAND ${BIOLM_EXE} convert from-hf ${convert_out}/heads/bert-sequence_classification_hf ${convert_out}/heads/bert-ner
          --task token_classification --labels O,B-Disease,I-Disease)
set_tests_properties(cli::convert_from_hf_other_head PROPERTIES FIXTURES_REQUIRED biolm_convert_head_bert-sequence_classification
  PASS_REGULAR_EXPRESSION "\"labels\":\\[\"O\",\"B-Disease\",\"I-Disease\"\\],\"loaded\":[0-9]+,\"missing\":\\[\\],\"model_type\":\"bert\",.*\"unexpected\":\\[\"bert.pooler.dense.bias\",\"bert.pooler.dense.weight\"\\]")
add_test(NAME cli::convert_from_hf_strict
  COMMAND ${BIOLM_EXE} convert from-hf ${convert_out}/heads/bert-sequence_classification_hf ${convert_out}/heads/bert-ner-strict
          --task token_classification --strict)
set_tests_properties(cli::convert_from_hf_strict PROPERTIES FIXTURES_REQUIRED biolm_convert_head_bert-sequence_classification
  PASS_REGULAR_EXPRESSION "biolm: error: .*strict load into a bert model failed: .*unexpected 2 \\[bert.pooler.dense.bias, bert.pooler.dense.weight\\]")

# A config.json of another model type is refused, naming it.
add_test(NAME cli::convert_unsupported_model_type
  COMMAND ${BIOLM_EXE} convert from-hf ${CMAKE_CURRENT_SOURCE_DIR}/cli/convert/t5 ${convert_out}/t5)
set_tests_properties(cli::convert_unsupported_model_type PROPERTIES
  PASS_REGULAR_EXPRESSION "biolm: error: .*model_type 't5' is not supported \\(supported: bert, megatron-bert, gpt2, llama, mistral\\)")
