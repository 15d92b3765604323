# Embed the system CPython (Debian's /usr/bin/python3 and libpython3.11), never a
# pyenv interpreter that happens to be first on PATH: pyenv's Python has no numpy and
# its libpython is not the one Debian's pybind11 and python3-numpy were built for.
set(MYCELIUM_SYSTEM_PYTHON /usr/bin/python3 CACHE FILEPATH "Interpreter whose libpython is embedded")
if(NOT DEFINED Python_EXECUTABLE)
  set(Python_EXECUTABLE ${MYCELIUM_SYSTEM_PYTHON} CACHE FILEPATH "" FORCE)
endif()
# pybind11's legacy FindPythonLibsNew reads PYTHON_EXECUTABLE.
set(PYTHON_EXECUTABLE ${Python_EXECUTABLE} CACHE FILEPATH "" FORCE)
set(PYBIND11_FINDPYTHON ON CACHE BOOL "" FORCE)
set(Python_FIND_VIRTUALENV STANDARD)
set(Python_FIND_STRATEGY LOCATION)

find_package(Python 3.11 REQUIRED COMPONENTS Interpreter Development.Embed)

foreach(path IN ITEMS "${Python_EXECUTABLE}" "${Python_LIBRARIES}")
  if(path MATCHES "/\\.pyenv/|/pyenv/")
    message(FATAL_ERROR
      "mycelium-host must embed the system CPython, but CMake chose '${path}', which lives "
      "under a pyenv directory. Configure with -DPython_EXECUTABLE=/usr/bin/python3 "
      "(the default) and make sure Debian's libpython3.11-dev is installed.")
  endif()
endforeach()
message(STATUS "mycelium: embedding ${Python_EXECUTABLE} (${Python_LIBRARIES})")
