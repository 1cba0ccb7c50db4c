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
set_tests_properties(cli::launch_child_failure PROPERTIES PASS_REGULAR_EXPRESSION "a process exited with 3")
