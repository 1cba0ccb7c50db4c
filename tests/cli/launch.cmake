# biolm launch passes the child's arguments through verbatim ("[x]" is not CLI11 list syntax, "a,b"
# is not split, a later "--" and "-n" belong to the child) and sets RANK per process. The two
# ranks print in any order: sort them, then one regex must see both lines.
add_test(NAME cli::launch_verbatim_args
         COMMAND /bin/sh -c "\"$0\" launch -n 2 -- /bin/sh -c 'echo \"R$RANK/$WORLD_SIZE:$0:$1:$2:$3\"' '[x]' 'a,b' -- -n | sort | tr '\\n' ' '"
                 ${BIOLM_EXE})
set_tests_properties(cli::launch_verbatim_args PROPERTIES
                     PASS_REGULAR_EXPRESSION "R0/2:\\[x\\]:a,b:--:-n R1/2:\\[x\\]:a,b:--:-n ")
# A failing child makes launch fail with its exit code.
add_test(NAME cli::launch_child_failure COMMAND ${BIOLM_EXE} launch -n 2 -- /bin/sh -c "exit 3")
set_tests_properties(cli::launch_child_failure PROPERTIES PASS_REGULAR_EXPRESSION "rank [01] exited with 3")
# Two nodes: node 1 of 2 with 2 processes each gets global ranks 2 and 3 of 4, local ranks 0 and 1.
add_test(NAME cli::launch_node_rank
         COMMAND /bin/sh -c "\"$0\" launch -n 2 --nnodes 2 --node-rank 1 --master-port 29999 -- /bin/sh -c 'echo \"R$RANK/$WORLD_SIZE:L$LOCAL_RANK/$LOCAL_WORLD_SIZE:G$GROUP_RANK\"' | sort | tr '\\n' ' '"
                 ${BIOLM_EXE})
set_tests_properties(cli::launch_node_rank PROPERTIES
                     PASS_REGULAR_EXPRESSION "R2/4:L0/2:G1 R3/4:L1/2:G1 ")
# torchrun and biolm launch with two processes (ZeRO-2 / ZeRO-1) end with one process's weights.
add_test(NAME cli::dist_finetune_world_size_independent
         COMMAND /bin/sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/scripts/dist_finetune.sh ${BIOLM_EXE} ${cli_out}/dist-finetune
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::dist_finetune_world_size_independent PROPERTIES
                     SKIP_RETURN_CODE 77 PASS_REGULAR_EXPRESSION "DIST_FINETUNE_OK" TIMEOUT 900)
# torchrun --max-restarts: a killed worker; the restarted job resumes by itself and ends as the unbroken run.
add_test(NAME cli::dist_torchrun_elastic_restart
         COMMAND /bin/sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/scripts/dist_restart.sh ${BIOLM_EXE} ${cli_out}/dist-restart
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::dist_torchrun_elastic_restart PROPERTIES
                     SKIP_RETURN_CODE 77 PASS_REGULAR_EXPRESSION "DIST_RESTART_OK" TIMEOUT 900)
# ZeRO-3 sharded checkpoint -> `biolm convert checkpoint` == the consolidated run's weights, exactly.
add_test(NAME cli::dist_convert_sharded_checkpoint
         COMMAND /bin/sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/scripts/dist_convert.sh ${BIOLM_EXE} ${cli_out}/dist-convert
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli::dist_convert_sharded_checkpoint PROPERTIES PASS_REGULAR_EXPRESSION "DIST_CONVERT_OK"
                     TIMEOUT 900)
