# Token and store micro-benchmarks (included by bench/CMakeLists.txt).
#   token_bench: minting, format check, hashing, TokenIndex::Verify over 1,000,000 tokens
#   store_bench: SQLite lookups by hash over N tokens (--tokens=N, default 1,000,000),
#                file size per token, token creation throughput
add_executable(token_bench ${CMAKE_CURRENT_LIST_DIR}/token_bench.cc)
target_link_libraries(token_bench PRIVATE gatehouse_tokens benchmark::benchmark)

add_executable(store_bench ${CMAKE_CURRENT_LIST_DIR}/store_bench.cc)
target_link_libraries(store_bench PRIVATE gatehouse_store gatehouse_tokens benchmark::benchmark)
