# Invariant checking (issue 13; included by bench/CMakeLists.txt).
#   invariant_bench: 20 invariants checked exactly on the default policy and on
#                    the generated 500-action policy (large_policy.h).
# Run: invariant_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
add_executable(invariant_bench
  ${CMAKE_CURRENT_LIST_DIR}/invariant_bench.cc
  ${CMAKE_CURRENT_LIST_DIR}/large_policy.cc
)
target_link_libraries(invariant_bench PRIVATE gatehouse_policy benchmark::benchmark benchmark::benchmark_main)
target_compile_definitions(invariant_bench PRIVATE GATEHOUSE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
