# The library's layers (docs/design.md draws them).
#
#   qat_layer(NAME SOURCES src... [PUBLIC_HEADERS hdr...] [LAYERS lower...]
#             [EXTRA_INCLUDES dir...])
#
# makes the OBJECT library qat_NAME from lib/NAME/.  It compiles against a
# "view": a folder of links to its own private folder (lib/NAME), to the
# private folders of the LAYERS it names, and to the public headers
# (include/qat/...) that those layers declare in PUBLIC_HEADERS.  Nothing
# else is on its include path, so an include of a layer above, private
# ("train/parameters.h") or public ("qat/trainer.h"), does not build.  A
# layer may only name layers declared before it, so the arrows point down.
#
# qat_check_layers() fails the configure step when a public header belongs
# to no layer, or to two.

function(_qat_link target link)
  get_filename_component(dir ${link} DIRECTORY)
  file(MAKE_DIRECTORY ${dir})
  if(IS_SYMLINK ${link})
    file(REMOVE ${link})
  endif()
  file(CREATE_LINK ${target} ${link} SYMBOLIC)
endfunction()

function(qat_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;PUBLIC_HEADERS;LAYERS;EXTRA_INCLUDES" ${ARGN})
  set_property(GLOBAL PROPERTY QAT_LAYER_HEADERS_${name} "${L_PUBLIC_HEADERS}")
  set(view ${PROJECT_BINARY_DIR}/layer_views/${name})
  foreach(layer ${name} ${L_LAYERS})
    if(NOT layer STREQUAL name AND NOT TARGET qat_${layer})
      message(FATAL_ERROR "layer '${name}' uses '${layer}', which is not a layer below it")
    endif()
    if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/lib/${layer})
      _qat_link(${PROJECT_SOURCE_DIR}/lib/${layer} ${view}/${layer})
    endif()
    get_property(headers GLOBAL PROPERTY QAT_LAYER_HEADERS_${layer})
    foreach(header ${headers})
      set(source ${PROJECT_SOURCE_DIR}/include/qat/${header})
      if(NOT EXISTS ${source})
        set(source ${PROJECT_BINARY_DIR}/include/qat/${header})  # generated
      endif()
      _qat_link(${source} ${view}/qat/${header})
    endforeach()
  endforeach()

  add_library(qat_${name} OBJECT ${L_SOURCES})
  set_target_properties(qat_${name} PROPERTIES QAT_LAYER_VIEW ${view})
  target_include_directories(qat_${name} PRIVATE ${view} ${CMAKE_CURRENT_BINARY_DIR}
                                                 ${L_EXTRA_INCLUDES})
  target_compile_definitions(qat_${name} PRIVATE QAT_BUILDING_LIBRARY)
  target_link_libraries(qat_${name}
    PUBLIC absl::status absl::statusor absl::span absl::strings
           absl::flat_hash_map absl::flat_hash_set
    PRIVATE qat_compile_options qat_kernel_config Threads::Threads
            onnx onnx_proto Eigen3::Eigen)
  set_property(GLOBAL APPEND PROPERTY QAT_LAYER_OBJECTS $<TARGET_OBJECTS:qat_${name}>)
  set_property(GLOBAL APPEND PROPERTY QAT_LAYERS ${name})
endfunction()

function(qat_check_layers)
  file(GLOB_RECURSE headers RELATIVE ${PROJECT_SOURCE_DIR}/include/qat
       ${PROJECT_SOURCE_DIR}/include/qat/*.h)
  list(APPEND headers version.h)
  get_property(layers GLOBAL PROPERTY QAT_LAYERS)
  foreach(header ${headers})
    set(owners "")
    foreach(layer ${layers})
      get_property(declared GLOBAL PROPERTY QAT_LAYER_HEADERS_${layer})
      if(header IN_LIST declared)
        list(APPEND owners ${layer})
      endif()
    endforeach()
    list(LENGTH owners count)
    if(NOT count EQUAL 1)
      message(FATAL_ERROR
        "public header qat/${header} must belong to exactly one layer (now: '${owners}')")
    endif()
  endforeach()
endfunction()
