# Policy engine micro-benchmarks (included by bench/CMakeLists.txt).
#   engine_bench: Decide from ids and from names, compiling the default policy
#                 (folder and in-memory), compiling and deciding on a generated
#                 large policy (large_policy.h); --peak_memory prints the peak
#                 RSS and TableBytes of compiling the large policy once.
# Run: engine_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
add_executable(engine_bench
  ${CMAKE_CURRENT_LIST_DIR}/engine_bench.cc
  ${CMAKE_CURRENT_LIST_DIR}/large_policy.cc
)
target_link_libraries(engine_bench PRIVATE gatehouse_policy benchmark::benchmark)
target_compile_definitions(engine_bench PRIVATE GATEHOUSE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
