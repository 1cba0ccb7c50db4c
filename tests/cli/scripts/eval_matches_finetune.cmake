# `biolm eval --task TASK` on a finetune run's model/ must reproduce the test metrics that
# finetune itself printed (same featurizer, decoding, bootstrap seed), value and interval.
#   cmake -DBIOLM=<exe> -DRUN=<finetune output dir> -DTASK=ner -DDATA=<test file> -DMETRIC=f1
#         -DSEED=13 -DBOOT=200 -DWORKDIR=dir -P eval_matches_finetune.cmake
execute_process(COMMAND ${BIOLM} eval --model ${RUN}/model --task ${TASK} --data ${DATA}
                        --seed ${SEED} --bootstrap ${BOOT}
                WORKING_DIRECTORY ${WORKDIR} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "biolm eval exited ${rc}:\n${err}")
endif()
file(READ ${RUN}/results.json ft)
foreach(part value "ci;0" "ci;1")
  string(JSON a GET "${out}" metrics ${METRIC} ${part})
  string(JSON b GET "${ft}" tasks ${TASK} ${METRIC} ${part})
  if(NOT a EQUAL b)
    message(FATAL_ERROR "${METRIC} ${part}: eval gives ${a}, finetune printed ${b}\n${out}")
  endif()
endforeach()
string(JSON kind GET "${out}" mode)
if(NOT kind STREQUAL "head")
  message(FATAL_ERROR "expected mode head:\n${out}")
endif()
message(STATUS "eval reproduces finetune's ${TASK} ${METRIC}: ${a}")
