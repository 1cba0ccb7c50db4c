# Finds every dependency the way its package intends. Debian 12 provides all of them
# (tools/setup-debian.sh); a CUDA LibTorch 2.x is picked up through CMAKE_PREFIX_PATH or Torch_DIR.
include(${CMAKE_CURRENT_LIST_DIR}/BiolmPipTorch.cmake)
find_package(Torch REQUIRED)
# One LibTorch only: every torch/c10 library must come from the prefix whose headers we compile
# against (mixing Debian's 1.13 libc10 with a 2.x libtorch links, then crashes).
foreach(lib IN ITEMS c10_LIBRARY TORCH_LIBRARY C10_CUDA_LIBRARY)
  if(${lib} AND NOT ${lib} MATCHES "^${TORCH_INSTALL_PREFIX}/")
    message(FATAL_ERROR "libbiolm: ${lib}=${${lib}} is not under the LibTorch prefix "
                        "${TORCH_INSTALL_PREFIX}; put that prefix first in CMAKE_PREFIX_PATH.")
  endif()
endforeach()
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(ZLIB REQUIRED)

# CLI11 is header-only; Debian ships its CMake config under share/.
find_package(CLI11 CONFIG QUIET)
if(NOT CLI11_FOUND)
  find_path(BIOLM_CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${BIOLM_CLI11_INCLUDE})
endif()

# yaml-cpp 0.7 in Debian exports the target "yaml-cpp" (newer ones: yaml-cpp::yaml-cpp).
if(TARGET yaml-cpp::yaml-cpp)
  set(BIOLM_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(BIOLM_YAML_TARGET yaml-cpp)
endif()

if(BIOLM_WITH_SENTENCEPIECE)
  find_package(Protobuf REQUIRED)
  # The library file, not protobuf::libprotobuf: a pip torch's Caffe2 config defines that target
  # first (empty for its own hidden, bundled protobuf), and SentencePiece then links no protobuf.
  find_path(BIOLM_SPM_INCLUDE sentencepiece_processor.h
            HINTS ${BIOLM_SENTENCEPIECE_ROOT}/include NO_DEFAULT_PATH)
  find_library(BIOLM_SPM_LIB NAMES libsentencepiece.a sentencepiece
               HINTS ${BIOLM_SENTENCEPIECE_ROOT}/lib NO_DEFAULT_PATH)
  find_library(BIOLM_SPM_TRAIN_LIB NAMES libsentencepiece_train.a sentencepiece_train
               HINTS ${BIOLM_SENTENCEPIECE_ROOT}/lib NO_DEFAULT_PATH)
  if(NOT BIOLM_SPM_INCLUDE OR NOT BIOLM_SPM_LIB OR NOT BIOLM_SPM_TRAIN_LIB)
    message(FATAL_ERROR
      "SentencePiece not found under ${BIOLM_SENTENCEPIECE_ROOT}. Run tools/setup-debian.sh, "
      "set -DBIOLM_SENTENCEPIECE_ROOT=..., or configure with -DBIOLM_WITH_SENTENCEPIECE=OFF.")
  endif()
  add_library(biolm_sentencepiece INTERFACE)
  target_include_directories(biolm_sentencepiece SYSTEM INTERFACE ${BIOLM_SPM_INCLUDE})
  target_link_libraries(biolm_sentencepiece INTERFACE
    ${BIOLM_SPM_TRAIN_LIB} ${BIOLM_SPM_LIB} ${Protobuf_LIBRARIES} Threads::Threads)
endif()

if(BIOLM_WITH_HDF5)
  find_package(HDF5 REQUIRED COMPONENTS C CXX)
  add_library(biolm_hdf5 INTERFACE)
  target_include_directories(biolm_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
  target_compile_definitions(biolm_hdf5 INTERFACE ${HDF5_DEFINITIONS})
  target_link_libraries(biolm_hdf5 INTERFACE ${HDF5_CXX_LIBRARIES} ${HDF5_LIBRARIES})
endif()

# CUDA is whatever the LibTorch we found was built with.
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CUDA_FOUND)
  set(BIOLM_TORCH_HAS_CUDA ON)
else()
  set(BIOLM_TORCH_HAS_CUDA OFF)
endif()
message(STATUS "libbiolm: LibTorch ${Torch_VERSION}, CUDA in LibTorch: ${BIOLM_TORCH_HAS_CUDA}, "
               "SentencePiece: ${BIOLM_WITH_SENTENCEPIECE}, HDF5: ${BIOLM_WITH_HDF5}")
