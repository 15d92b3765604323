# Makes mycelium usable from another CMake project with find_package(mycelium):
# installed (cmake --install) or straight from a build tree (-Dmycelium_DIR=<build>).
# Targets: mycelium::core, mycelium::topology, mycelium::embedded, mycelium::mycelium-host.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(mycelium_core PROPERTIES EXPORT_NAME core)
set_target_properties(mycelium_topology PROPERTIES EXPORT_NAME topology)
set_target_properties(mycelium_embedded PROPERTIES EXPORT_NAME embedded)
target_include_directories(mycelium_embedded PUBLIC $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

install(TARGETS mycelium_core mycelium_topology mycelium_embedded mycelium-host
  EXPORT mycelium-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY host/include/mycelium topology/include/mycelium embedded/include/mycelium
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT mycelium-targets NAMESPACE mycelium:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mycelium)

configure_package_config_file(cmake/mycelium-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/mycelium-config.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mycelium)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/mycelium-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/mycelium-config.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/mycelium-config-version.cmake
  ${CMAKE_CURRENT_SOURCE_DIR}/cmake/FindAsio.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mycelium)

# The same package from the build tree, for the library example's test.
export(EXPORT mycelium-targets NAMESPACE mycelium:: FILE ${CMAKE_CURRENT_BINARY_DIR}/mycelium-targets.cmake)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/FindAsio.cmake ${CMAKE_CURRENT_BINARY_DIR}/FindAsio.cmake COPYONLY)
