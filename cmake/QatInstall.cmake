# Install rules: headers, libqat.so (with SOVERSION) and libqat.a, the qat
# program, a CMake package (qatConfig.cmake + version file) and qat.pc.
include(CMakePackageConfigHelpers)

set(QAT_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/qat)

set_target_properties(qat_shared PROPERTIES EXPORT_NAME qat)
set_target_properties(qat_static PROPERTIES EXPORT_NAME qat_static)

install(TARGETS qat_shared qat_static EXPORT qatTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/qat
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/include/qat/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/qat)
# The C ABI's header, <qat/c_api.h>, beside the C++ headers (it includes
# qat/api.h for the export macro).
install(FILES ${PROJECT_SOURCE_DIR}/capi/include/qat/c_api.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/qat)

install(EXPORT qatTargets NAMESPACE qat:: DESTINATION ${QAT_CMAKE_INSTALL_DIR})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/qatConfig.cmake.in
  ${PROJECT_BINARY_DIR}/qatConfig.cmake
  INSTALL_DESTINATION ${QAT_CMAKE_INSTALL_DIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/qatConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qatConfig.cmake
              ${PROJECT_BINARY_DIR}/qatConfigVersion.cmake
        DESTINATION ${QAT_CMAKE_INSTALL_DIR})

configure_file(${PROJECT_SOURCE_DIR}/cmake/qat.pc.in
               ${PROJECT_BINARY_DIR}/qat.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/qat.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
