# The sidecar's HTTP load benchmark (bench/load.sh), included by bench/CMakeLists.txt.
#   hello_server: the cpp-httplib hello-world reference, tuned like gatehoused
#   seed_store:   fills a store with N tokens (for the RSS measurement)
#   nginx-reference.conf (not built): nginx `return 200`, the throughput floor
add_executable(hello_server ${CMAKE_CURRENT_LIST_DIR}/hello_server.cc)
target_link_libraries(hello_server PRIVATE PkgConfig::HTTPLIB Threads::Threads)

add_executable(seed_store ${CMAKE_CURRENT_LIST_DIR}/seed_store.cc)
target_link_libraries(seed_store PRIVATE gatehouse_store gatehouse_tokens)

# Edge measurements (bench/load.sh MODE=load|edge): raw sockets, no libraries.
#   probe:       fresh connections one after another beside wrk; answered count, p50/p99/max
#   conn_holder: holds K idle keep-alive and S slow-header (trickling) connections open
add_executable(probe ${CMAKE_CURRENT_LIST_DIR}/probe.cc)
add_executable(conn_holder ${CMAKE_CURRENT_LIST_DIR}/conn_holder.cc)

# The cost of --shadow-policy per decision, in process (sidecar/shadow.h).
add_executable(shadow_bench ${CMAKE_CURRENT_LIST_DIR}/shadow_bench.cc)
target_link_libraries(shadow_bench PRIVATE gatehouse_sidecar benchmark::benchmark)
target_compile_definitions(shadow_bench PRIVATE GATEHOUSE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
