# The directory (gatehouse/authorizer.h), included by bench/CMakeLists.txt.
#   directory_bench: lookups on the request path, a whole Directory::Load, and
#                    a catch-up after one membership role change (--orgs, --users)
add_executable(directory_bench ${CMAKE_CURRENT_LIST_DIR}/directory_bench.cc)
target_link_libraries(directory_bench PRIVATE gatehouse_admin benchmark::benchmark)
target_compile_definitions(directory_bench PRIVATE GATEHOUSE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
