# Run by "cmake --install" (cmake/install.cmake sets REALMS_SRC, REALMS_GEN,
# REALMS_SYSCONFDIR, REALMS_SYSTEMD_UNITDIR, REALMS_TMPFILESDIR): what
# depends on the prefix given at install time, and the configuration.
set(prefix "${CMAKE_INSTALL_PREFIX}")
set(SBINDIR "${prefix}/sbin")
set(DATADIR "${prefix}/share")
set(SYSCONFDIR "${REALMS_SYSCONFDIR}")
set(unitdir "${REALMS_SYSTEMD_UNITDIR}")
if(unitdir STREQUAL "")
  set(unitdir "${prefix}/lib/systemd/system")
endif()
set(tmpfilesdir "${REALMS_TMPFILESDIR}")
if(tmpfilesdir STREQUAL "")
  set(tmpfilesdir "${prefix}/lib/tmpfiles.d")
endif()

# The units name the programs' and the configuration's paths.
configure_file("${REALMS_SRC}/packaging/systemd/realms-agent.service.in"
               "${REALMS_GEN}/realms-agent.service" @ONLY)
configure_file("${REALMS_SRC}/packaging/systemd/haproxy-realms.conf.in"
               "${REALMS_GEN}/haproxy-realms.conf" @ONLY)
configure_file("${REALMS_SRC}/packaging/systemd/realms.tmpfiles"
               "${REALMS_GEN}/realms.conf" COPYONLY)
file(INSTALL "${REALMS_GEN}/realms-agent.service" DESTINATION "${unitdir}")
# Not under a haproxy.service.d: it makes HAProxy load a file that exists
# only once the operator has rendered it (docs/deploy.md enables it).
file(INSTALL "${REALMS_GEN}/haproxy-realms.conf"
     DESTINATION "${DATADIR}/realms/systemd")
file(INSTALL "${REALMS_GEN}/realms.conf" DESTINATION "${tmpfilesdir}")

# /etc/realms: 0750 (root:realms once that group exists), the example
# configuration 0640, never replacing one already there.
set(etc "$ENV{DESTDIR}${SYSCONFDIR}/realms")
file(MAKE_DIRECTORY "${etc}" "${etc}/haproxy")
file(CHMOD "${etc}" "${etc}/haproxy" DIRECTORY_PERMISSIONS
     OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
if(EXISTS "${etc}/realms.json")
  message(STATUS "Keeping: ${etc}/realms.json")
else()
  # file(INSTALL) adds DESTDIR itself.
  file(INSTALL "${REALMS_SRC}/packaging/realms.json"
       DESTINATION "${SYSCONFDIR}/realms"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
endif()
# HAProxy finds realms.spoe next to the rendered channels.cfg and
# setup.html (REALMS_HAPROXY_DIR); the agent's contract moves with the
# package, not with the operator's files.
file(CREATE_LINK "${DATADIR}/realms/haproxy/realms.spoe"
     "${etc}/haproxy/realms.spoe" SYMBOLIC)
message(STATUS "Installing: ${etc}/haproxy/realms.spoe -> ${DATADIR}/realms/haproxy/realms.spoe")
# A real install by root on a host where the group exists: the agent reads
# /etc/realms through its supplementary group realms.
if("$ENV{DESTDIR}" STREQUAL "")
  execute_process(COMMAND getent group realms OUTPUT_QUIET RESULT_VARIABLE nogroup)
  execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(nogroup EQUAL 0 AND uid STREQUAL "0")
    execute_process(COMMAND chgrp realms "${etc}" "${etc}/haproxy" "${etc}/realms.json")
  endif()
endif()
