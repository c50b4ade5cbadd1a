# Debian's split libopencv-*-dev packages ship no CMake config: find the headers and the three
# libraries cnnvis uses (core, imgproc, imgcodecs) by hand and wrap them in one target.
if(NOT TARGET cnnvis_opencv)
  find_path(CNNVIS_OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
  foreach(component core imgproc imgcodecs)
    find_library(CNNVIS_OPENCV_${component} NAMES opencv_${component} REQUIRED)
  endforeach()
  add_library(cnnvis_opencv INTERFACE IMPORTED)
  set_target_properties(cnnvis_opencv PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${CNNVIS_OPENCV_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES
      "${CNNVIS_OPENCV_imgcodecs};${CNNVIS_OPENCV_imgproc};${CNNVIS_OPENCV_core}")
endif()
