# The sidecar's HTTP load benchmark (bench/load.sh), included by bench/CMakeLists.txt.
#   hello_server: the cpp-httplib hello-world reference, tuned like gatehoused
#   seed_store:   fills a store with N tokens (for the RSS measurement)
add_executable(hello_server ${CMAKE_CURRENT_LIST_DIR}/hello_server.cc)
target_link_libraries(hello_server PRIVATE PkgConfig::HTTPLIB Threads::Threads)

add_executable(seed_store ${CMAKE_CURRENT_LIST_DIR}/seed_store.cc)
target_link_libraries(seed_store PRIVATE gatehouse_store gatehouse_tokens)
