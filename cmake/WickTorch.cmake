# Finds the libtorch wick builds against and defines the target wk_libtorch.
#
# - TORCH_DIR set (cache variable or environment): a libtorch tree (the libtorch zip) or a
#   prefix holding share/cmake/Torch (Debian 13's libtorch-dev: TORCH_DIR=/usr), through
#   its own CMake config.
# - otherwise the torch package of WK_PYTHON (default: .venv/bin/python, made by
#   scripts/install-deps.sh). Its headers and its CPU libraries (libtorch_cpu, libc10) are
#   imported directly, not through TorchConfig.cmake: the pinned wheel is a CUDA build whose
#   config refuses to configure without a CUDA toolkit, and linking libtorch_cuda would
#   load the CUDA libraries (+0.4 GB RSS, +0.15 s start) into every wick. backend/torch.cc
#   loads libtorch_cuda.so from the same folder when a model asks for a GPU.
# The floor is libtorch 2.6 (AOTInductor packages, scaled_dot_product_attention).
# Sets WK_TORCH_VERSION and WK_TORCH_LIBDIR.

set(WK_TORCH_MIN_VERSION 2.6)
if(NOT TORCH_DIR AND DEFINED ENV{TORCH_DIR})
  set(TORCH_DIR $ENV{TORCH_DIR})
endif()

if(TORCH_DIR)
  find_package(Torch REQUIRED PATHS ${TORCH_DIR} ${TORCH_DIR}/share/cmake/Torch NO_DEFAULT_PATH)
  set(WK_TORCH_VERSION ${Torch_VERSION})
  add_library(wk_libtorch INTERFACE)
  target_link_libraries(wk_libtorch INTERFACE ${TORCH_LIBRARIES})
  get_filename_component(WK_TORCH_LIBDIR "${TORCH_LIBRARY}" DIRECTORY)
  message(STATUS "wick: libtorch ${WK_TORCH_VERSION} from TORCH_DIR=${TORCH_DIR}")
else()
  if(NOT EXISTS "${WK_PYTHON}")
    message(FATAL_ERROR "wick: no Python at WK_PYTHON=${WK_PYTHON} to find torch in: run "
                        "scripts/install-deps.sh (it makes .venv/), or set TORCH_DIR to a libtorch")
  endif()
  execute_process(
    COMMAND "${WK_PYTHON}" -c
      "import os, torch; print(os.path.dirname(torch.__file__)); print(torch.__version__.split('+')[0]); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
    OUTPUT_VARIABLE _wk_torch_out RESULT_VARIABLE _wk_rc ERROR_VARIABLE _wk_torch_err
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _wk_rc EQUAL 0)
    message(FATAL_ERROR "wick: ${WK_PYTHON} cannot import torch (run scripts/install-deps.sh):\n${_wk_torch_err}")
  endif()
  string(REPLACE "\n" ";" _wk_torch_out "${_wk_torch_out}")
  list(GET _wk_torch_out 0 _wk_torch_root)
  list(GET _wk_torch_out 1 WK_TORCH_VERSION)
  list(GET _wk_torch_out 2 _wk_cxx11_abi)
  set(WK_TORCH_LIBDIR ${_wk_torch_root}/lib)
  foreach(_lib torch_cpu c10)
    if(NOT EXISTS ${WK_TORCH_LIBDIR}/lib${_lib}.so)
      message(FATAL_ERROR "wick: ${WK_TORCH_LIBDIR}/lib${_lib}.so is missing: is this a torch wheel?")
    endif()
  endforeach()
  add_library(wk_libtorch INTERFACE)
  target_include_directories(wk_libtorch SYSTEM INTERFACE ${_wk_torch_root}/include
                             ${_wk_torch_root}/include/torch/csrc/api/include)
  target_compile_definitions(wk_libtorch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_wk_cxx11_abi})
  # --no-as-needed: libtorch_cpu's operator registrations run from its static
  # initializers, which the linker would drop with the library if no symbol looked used.
  target_link_libraries(wk_libtorch INTERFACE -Wl,--no-as-needed
                        ${WK_TORCH_LIBDIR}/libtorch_cpu.so ${WK_TORCH_LIBDIR}/libc10.so
                        -Wl,--as-needed)
  message(STATUS "wick: libtorch ${WK_TORCH_VERSION} from ${_wk_torch_root} (${WK_PYTHON})")
endif()

if(WK_TORCH_VERSION VERSION_LESS WK_TORCH_MIN_VERSION)
  message(FATAL_ERROR "wick: libtorch ${WK_TORCH_VERSION} is too old; wick needs "
                      ">= ${WK_TORCH_MIN_VERSION} (torch.export/AOTInductor packages, "
                      "scaled_dot_product_attention). Run scripts/install-deps.sh for the pinned torch.")
endif()
