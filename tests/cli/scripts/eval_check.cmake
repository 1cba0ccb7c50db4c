# Runs `biolm eval` (or any biolm command) and checks its outcome; used by tests/cli/eval.cmake
# (kept out of tests/cli/*.cmake, which tests/CMakeLists.txt includes).
#   cmake -DBIOLM=<exe> -DARGS="a;b;c" [-DEXPECT_EXIT=N] [-DEXPECT_STDERR=regex]
#         [-DEXPECT_METRICS="acc;acc_norm"] [-DEXPECT_FIELDS="task=pubmedqa;mode=loglik;n=20"]
#         [-DSAME_AS=<json file>] [-DWORKDIR=dir] -P eval_check.cmake
# With EXPECT_METRICS, stdout must be one JSON object whose metrics.<m> has a value in [0, 1]
# and a ci [lo, hi] with lo <= value <= hi. SAME_AS: every expected metric value equals the
# one in that file (same model weights in two formats give the same numbers).
if(NOT DEFINED EXPECT_EXIT)
  set(EXPECT_EXIT 0)
endif()
if(NOT DEFINED WORKDIR)
  set(WORKDIR .)
endif()
execute_process(COMMAND ${BIOLM} ${ARGS} WORKING_DIRECTORY ${WORKDIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL EXPECT_EXIT)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_EXIT}\nstdout: ${out}\nstderr: ${err}")
endif()
if(DEFINED EXPECT_STDERR AND NOT err MATCHES "${EXPECT_STDERR}")
  message(FATAL_ERROR "stderr does not match '${EXPECT_STDERR}':\n${err}")
endif()
foreach(kv IN LISTS EXPECT_FIELDS)
  string(REPLACE "=" ";" kv_list "${kv}")
  list(GET kv_list 0 key)
  list(GET kv_list 1 want)
  string(JSON got GET "${out}" ${key})
  if(NOT got STREQUAL want)
    message(FATAL_ERROR "field ${key} = '${got}', expected '${want}'\n${out}")
  endif()
endforeach()
if(DEFINED SAME_AS)
  file(READ ${SAME_AS} other)
endif()
foreach(m IN LISTS EXPECT_METRICS)
  string(JSON v GET "${out}" metrics ${m} value)
  string(JSON lo GET "${out}" metrics ${m} ci 0)
  string(JSON hi GET "${out}" metrics ${m} ci 1)
  # CMake compares floats as numbers with LESS/GREATER.
  if(v LESS 0 OR v GREATER 1)
    message(FATAL_ERROR "metric ${m} = ${v} outside [0, 1]\n${out}")
  endif()
  if(lo GREATER v OR hi LESS v)
    message(FATAL_ERROR "metric ${m} = ${v} outside its interval [${lo}, ${hi}]\n${out}")
  endif()
  if(DEFINED SAME_AS)
    string(JSON v2 GET "${other}" metrics ${m} value)
    if(NOT v EQUAL v2)
      message(FATAL_ERROR "metric ${m} = ${v} but ${v2} in ${SAME_AS}")
    endif()
  endif()
  message(STATUS "${m} = ${v} [${lo}, ${hi}]")
endforeach()
message(STATUS "${out}")
