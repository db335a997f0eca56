# FindBLIS
# --------
# Finds the BLIS library (https://github.com/flame/blis). Debian ships no pkg-config file for
# it: blis.h lives under include/<triplet>/blis-openmp (or blis-pthread, blis-serial) and
# libblis.so under lib/<triplet>/blis-openmp. A source build or a Spack/module installation puts
# them under <prefix>/include/blis and <prefix>/lib. Set BLIS_ROOT to search a prefix first.
#
# Result: BLIS_FOUND, BLIS_INCLUDE_DIR, BLIS_LIBRARY and the imported target
# BLIS::BLIS (the version is reported at run time). BLIS_THREADING selects the Debian flavour searched first (default openmp).

set(BLIS_THREADING "openmp" CACHE STRING "BLIS flavour to prefer: openmp, pthread or serial")

set(_blis_suffixes
  blis-${BLIS_THREADING} ${CMAKE_LIBRARY_ARCHITECTURE}/blis-${BLIS_THREADING}
  blis ${CMAKE_LIBRARY_ARCHITECTURE})

find_path(BLIS_INCLUDE_DIR blis.h
  HINTS ${BLIS_ROOT} ENV BLIS_ROOT
  PATH_SUFFIXES include ${_blis_suffixes}
                include/${CMAKE_LIBRARY_ARCHITECTURE}/blis-${BLIS_THREADING} include/blis)
find_library(BLIS_LIBRARY NAMES blis blis-mt
  HINTS ${BLIS_ROOT} ENV BLIS_ROOT
  PATH_SUFFIXES lib lib64 ${_blis_suffixes}
                lib/${CMAKE_LIBRARY_ARCHITECTURE}/blis-${BLIS_THREADING})

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(BLIS
  REQUIRED_VARS BLIS_LIBRARY BLIS_INCLUDE_DIR)

if(BLIS_FOUND AND NOT TARGET BLIS::BLIS)
  add_library(BLIS::BLIS UNKNOWN IMPORTED)
  set_target_properties(BLIS::BLIS PROPERTIES
    IMPORTED_LOCATION "${BLIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BLIS_INCLUDE_DIR}")
endif()
mark_as_advanced(BLIS_INCLUDE_DIR BLIS_LIBRARY)
