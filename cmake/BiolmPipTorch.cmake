# Building against the LibTorch of a pip `torch` wheel (CPU or CUDA): CMAKE_PREFIX_PATH=
# $(python -c 'import torch;print(torch.utils.cmake_prefix_path)'). Used by our build and by
# biolmConfig.cmake (installed next to it) for an outside consumer.
#
# 1. A CUDA toolkit made of PyPI wheels (biolm_pip_cuda_setup).
#
# Why: the wheel's TorchConfig runs find_package(CUDA) + enable_language(CUDA) +
# find_package(CUDAToolkit) and wants nvcc, the CUDA headers and unversioned libcudart.so,
# libcublas.so... The wheels next to torch (nvidia-cuda-runtime, -cublas, -cudnn-cu13, ... and
# nvidia-cuda-nvcc, which tools/python/requirements.in adds) hold all of it, but only versioned
# sonames (libcudart.so.13) and split over several folders. This file lays a toolkit-shaped folder
# of symlinks in the build tree:
#   <build>/pip-cuda/{bin,nvvm}         -> site-packages/nvidia/cu13/...
#   <build>/pip-cuda/include/X          -> every header of nvidia/cu13/include, then nvidia/*/include
#   <build>/pip-cuda/lib64/libX.so      -> every lib of nvidia/*/lib (cu13, cudnn, nccl, ...); lib -> lib64
# and points CUDA_TOOLKIT_ROOT_DIR / CUDAToolkit_ROOT / CUDNN_* at it. It runs only when the Torch
# prefix lies inside a pip wheel, nvidia/cu*/bin/nvcc exists and no toolkit was given
# (-DCUDA_TOOLKIT_ROOT_DIR=... or -DBIOLM_PIP_CUDA=OFF bypass it). The driver (libcuda.so) is not
# needed to link: the wheel's libtorch_cuda does not link it, and nothing here runs a GPU.
option(BIOLM_PIP_CUDA "Assemble a CUDA toolkit from the nvidia-* wheels next to a pip torch" ON)

# The wheel's TorchConfig looks up c10/torch with find_library(... PATHS <torch>/lib), where the
# default paths win: with CMAKE_PREFIX_PATH=<torch>/share/cmake, Debian's /usr/lib/.../libc10.so
# (LibTorch 1.13) would be linked next to the wheel's libtorch. <torch> itself goes first.
function(biolm_pip_torch_site out_site)
  set(${out_site} "" PARENT_SCOPE)
  foreach(p IN LISTS CMAKE_PREFIX_PATH Torch_DIR)
    if(p MATCHES "^(.*/site-packages)/torch(/.*)?$")
      set(${out_site} "${CMAKE_MATCH_1}" PARENT_SCOPE)
      set(CMAKE_PREFIX_PATH "${CMAKE_MATCH_1}/torch" ${CMAKE_PREFIX_PATH} PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

function(biolm_pip_cuda_setup site)
  set(shim "${CMAKE_BINARY_DIR}/pip-cuda")
  if(NOT site OR NOT BIOLM_PIP_CUDA OR DEFINED ENV{CUDA_HOME}
     OR (CUDA_TOOLKIT_ROOT_DIR AND NOT CUDA_TOOLKIT_ROOT_DIR STREQUAL shim))   # a toolkit of the user's
    return()
  endif()
  file(GLOB nvcc_candidates "${site}/nvidia/cu*/bin/nvcc")
  if(NOT nvcc_candidates)
    if(EXISTS "${site}/torch/lib/libtorch_cuda.so")
      message(WARNING "libbiolm: ${site}/torch is a CUDA wheel but no nvcc wheel is installed next "
                      "to it (pip install nvidia-cuda-nvcc==<the torch wheel's CUDA version>; "
                      "tools/setup-python.sh does it). find_package(Torch) will fail.")
    endif()
    return()
  endif()
  list(GET nvcc_candidates 0 nvcc)
  get_filename_component(cu "${nvcc}" DIRECTORY)
  get_filename_component(cu "${cu}" DIRECTORY)          # .../nvidia/cu13
  file(MAKE_DIRECTORY "${shim}/lib64")
  if(NOT EXISTS "${shim}/lib")            # nvcc.profile links from lib/, FindCUDA looks in lib64/
    file(CREATE_LINK "${shim}/lib64" "${shim}/lib" SYMBOLIC)
  endif()
  foreach(sub bin nvvm)
    if(EXISTS "${cu}/${sub}" AND NOT EXISTS "${shim}/${sub}")
      file(CREATE_LINK "${cu}/${sub}" "${shim}/${sub}" SYMBOLIC)
    endif()
  endforeach()
  # include/: the toolkit's headers, then those of the other wheels (nccl.h, which c10d's
  # ProcessGroupNCCL.hpp includes; cudnn.h, cusparseLt.h...), one link per entry.
  file(MAKE_DIRECTORY "${shim}/include")
  file(GLOB headers "${cu}/include/*")
  file(GLOB other_headers "${site}/nvidia/*/include/*")
  foreach(h IN LISTS headers other_headers)
    get_filename_component(name "${h}" NAME)
    if(NOT EXISTS "${shim}/include/${name}")
      file(CREATE_LINK "${h}" "${shim}/include/${name}" SYMBOLIC)
    endif()
  endforeach()
  # Every versioned library of every nvidia wheel, under its soname and its unversioned name.
  file(GLOB libs "${site}/nvidia/*/lib/lib*.so*" "${site}/nvidia/*/lib/lib*.a")
  foreach(lib IN LISTS libs)
    get_filename_component(name "${lib}" NAME)
    string(REGEX REPLACE "\\.so(\\..*)?$" ".so" plain "${name}")
    foreach(n IN ITEMS "${name}" "${plain}")
      if(NOT EXISTS "${shim}/lib64/${n}")
        file(CREATE_LINK "${lib}" "${shim}/lib64/${n}" SYMBOLIC)
      endif()
    endforeach()
  endforeach()
  set(CUDA_TOOLKIT_ROOT_DIR "${shim}" CACHE PATH "CUDA toolkit (assembled from pip wheels)" FORCE)
  set(CUDAToolkit_ROOT "${shim}" CACHE PATH "CUDA toolkit (assembled from pip wheels)" FORCE)
  set(CMAKE_CUDA_COMPILER "${shim}/bin/nvcc" CACHE FILEPATH "nvcc from the nvidia-cuda-nvcc wheel" FORCE)
  if(EXISTS "${site}/nvidia/cudnn/include/cudnn.h")
    set(CUDNN_INCLUDE_PATH "${site}/nvidia/cudnn/include" CACHE PATH "cuDNN headers (pip)" FORCE)
    set(CUDNN_LIBRARY_PATH "${shim}/lib64/libcudnn.so" CACHE FILEPATH "cuDNN (pip)" FORCE)
  endif()
  message(STATUS "libbiolm: CUDA toolkit from pip wheels: ${cu} (assembled in ${shim})")
endfunction()
biolm_pip_torch_site(BIOLM_PIP_TORCH_SITE)
biolm_pip_cuda_setup("${BIOLM_PIP_TORCH_SITE}")

# The wheel's include/ carries its own fmt (12.x) ahead of /usr/include, while we link Debian's
# libfmt.so.9 and libspdlog (built on fmt 9): fmt 12 headers against libfmt 9 do not link.
# A folder of links to the fmt/spdlog we link goes in front of the wheel's headers of `target`.
function(biolm_fmt_first target scope)
  if(NOT EXISTS "${TORCH_INSTALL_PREFIX}/include/fmt" OR NOT TARGET fmt::fmt
     OR "${TORCH_INSTALL_PREFIX}/include" IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    return()                                    # Debian's LibTorch: its fmt is the system one
  endif()
  set(incs "")
  foreach(dep fmt::fmt spdlog::spdlog)
    if(TARGET ${dep})
      get_target_property(inc ${dep} INTERFACE_INCLUDE_DIRECTORIES)
      if(inc)
        list(APPEND incs ${inc})
      endif()
    endif()
  endforeach()
  list(APPEND incs "${CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES}" /usr/include)
  list(REMOVE_DUPLICATES incs)
  set(dir "${CMAKE_BINARY_DIR}/biolm-fmt-first")
  file(MAKE_DIRECTORY "${dir}")
  foreach(sub fmt spdlog)
    foreach(inc IN LISTS incs)
      if(IS_DIRECTORY "${inc}/${sub}" AND NOT EXISTS "${dir}/${sub}")
        file(CREATE_LINK "${inc}/${sub}" "${dir}/${sub}" SYMBOLIC)
      endif()
    endforeach()
  endforeach()
  get_target_property(imported ${target} IMPORTED)
  if(imported)
    target_include_directories(${target} BEFORE ${scope} "${dir}")
  else()
    target_include_directories(${target} BEFORE ${scope} "$<BUILD_INTERFACE:${dir}>")
  endif()
endfunction()
