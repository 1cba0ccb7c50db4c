# ctest driver: install libbiolm into a scratch prefix, move the prefix (the package must be
# relocatable), then configure, build and run an outside project against it.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

run_step(${CMAKE_COMMAND} --install ${BIOLM_BUILD_DIR} --prefix ${WORK_DIR}/stage)
file(RENAME ${WORK_DIR}/stage ${WORK_DIR}/moved_prefix)

run_step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
         -DCMAKE_BUILD_TYPE=Release
         -DCMAKE_PREFIX_PATH=${WORK_DIR}/moved_prefix
         -DTorch_DIR=${TORCH_DIR})
run_step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step(${WORK_DIR}/build/consumer)
message(STATUS "consumer output:\n${step_output}")
if(NOT step_output MATCHES "consumer ok")
  message(FATAL_ERROR "consumer ran but did not print 'consumer ok':\n${step_output}")
endif()
