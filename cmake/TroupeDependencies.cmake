# Third-party dependencies, all from Debian 12 packages
# (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)

# CAF 0.17.6 ships no CMake package.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(troupe_caf INTERFACE)
target_include_directories(troupe_caf SYSTEM INTERFACE ${CAF_INCLUDE_DIR})
target_link_libraries(troupe_caf INTERFACE ${CAF_CORE_LIBRARY} ${CAF_IO_LIBRARY}
  Threads::Threads)
add_library(troupe::caf ALIAS troupe_caf)

find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)  # compiled library (SPDLOG_COMPILED_LIB)
find_package(tomlplusplus REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(RocksDB REQUIRED)
find_package(CLI11 REQUIRED)

find_library(HTTPLIB_LIBRARY cpp-httplib REQUIRED)
find_path(HTTPLIB_INCLUDE_DIR httplib.h REQUIRED)
add_library(troupe_httplib INTERFACE)
target_include_directories(troupe_httplib SYSTEM INTERFACE ${HTTPLIB_INCLUDE_DIR})
target_compile_definitions(troupe_httplib INTERFACE CPPHTTPLIB_OPENSSL_SUPPORT
  CPPHTTPLIB_ZLIB_SUPPORT CPPHTTPLIB_BROTLI_SUPPORT)
target_link_libraries(troupe_httplib INTERFACE ${HTTPLIB_LIBRARY} Threads::Threads)
add_library(troupe::httplib ALIAS troupe_httplib)

if(TROUPE_BUILD_TESTS)
  find_package(doctest REQUIRED)
endif()
if(TROUPE_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# Transport: Cap'n Proto (schema compiler + runtime), UCX, OpenSSL (HMAC).
find_package(CapnProto REQUIRED)
find_package(ucx REQUIRED)
find_package(OpenSSL REQUIRED)

# hwloc: CPU, NUMA and PCI layout for the node agent's resource inventory.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)
