# Compiler flags, sanitizers and CUDA detection for troupe's own targets.

# troupe_target_defaults(<target>): warnings as errors and sanitizer flags.
# Applied to our targets only, never to third-party code.
function(troupe_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror
    # GCC 12 reports false -Wrestrict errors inside std::string at -O3 (GCC PR 105329).
    $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized -Wno-restrict>)
endfunction()

if(TROUPE_SANITIZE)
  string(REPLACE "," ";" _san_list "${TROUPE_SANITIZE}")
  foreach(_san IN LISTS _san_list)
    if(NOT _san MATCHES "^(address|undefined|thread|leak)$")
      message(FATAL_ERROR "TROUPE_SANITIZE: unknown sanitizer '${_san}' "
        "(expected address,undefined or thread)")
    endif()
  endforeach()
  if("thread" IN_LIST _san_list AND "address" IN_LIST _san_list)
    message(FATAL_ERROR "TROUPE_SANITIZE: thread and address cannot be combined")
  endif()
  add_compile_options(-fsanitize=${TROUPE_SANITIZE} -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  if("undefined" IN_LIST _san_list)
    # CAF 0.17's intrusive queues (caf/intrusive/task_queue.hpp:67, inlined
    # into our code) downcast their sentinel node to mailbox_element, which
    # UBSan's vptr check reports. The rest of UBSan stays on.
    add_compile_options(-fno-sanitize=vptr)
  endif()
  add_link_options(-fsanitize=${TROUPE_SANITIZE})
endif()

# CUDA: optional. AUTO uses /usr/local/cuda when a toolkit is there.
set(TROUPE_HAVE_CUDA OFF)
if(NOT TROUPE_WITH_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit)
    if(CUDAToolkit_FOUND)
      set(TROUPE_HAVE_CUDA ON)
    endif()
  endif()
  if(TROUPE_WITH_CUDA STREQUAL "ON" AND NOT TROUPE_HAVE_CUDA)
    message(FATAL_ERROR "TROUPE_WITH_CUDA=ON but no CUDA toolkit was found")
  endif()
endif()
message(STATUS "troupe: CUDA ${TROUPE_HAVE_CUDA}, sanitizers '${TROUPE_SANITIZE}'")

if(TROUPE_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TROUPE_BUILD_FUZZ needs clang: configure with "
      "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Instrument all our code for coverage feedback; only fuzz targets link
  # libFuzzer's main.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
