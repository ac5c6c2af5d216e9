# make install (cmake --install): PREFIX (CMAKE_INSTALL_PREFIX, or --prefix
# at install time) and DESTDIR are honoured. The Debian package installs
# with these same rules (debian/rules).
#
# Files that name installed paths (the systemd units) are written at install
# time from their templates, so that "cmake --install --prefix" needs no
# reconfiguring: packaging/install-generated.cmake.
#
# The configuration lives in REALMS_SYSCONFDIR/realms whatever the prefix
# (/etc/realms: where the units, the man pages and the docs say it is).
set(REALMS_SYSCONFDIR "/etc" CACHE PATH
    "Where realms/realms.json is installed (absolute)")
# Empty: <prefix>/lib/systemd/system and <prefix>/lib/tmpfiles.d, which
# systemd reads for /usr and /usr/local. debian/rules gives the release's
# own (pkg-config systemd).
set(REALMS_SYSTEMD_UNITDIR "" CACHE PATH "Where systemd units are installed")
set(REALMS_TMPFILESDIR "" CACHE PATH "Where tmpfiles.d entries are installed")

install(TARGETS realms-agent realmsctl RUNTIME DESTINATION sbin)
install(FILES haproxy/realms.cfg haproxy/realms.spoe haproxy/malloc.env
        DESTINATION share/realms/haproxy)
install(FILES lua-shim/realms.lua DESTINATION share/realms/lua-shim)
install(PROGRAMS scripts/realms-statusline DESTINATION share/realms)
install(FILES packaging/man/realms-agent.8 packaging/man/realmsctl.8
        DESTINATION share/man/man8)
install(FILES packaging/man/realms.json.5 DESTINATION share/man/man5)

install(CODE "
  set(REALMS_SRC \"${CMAKE_SOURCE_DIR}\")
  set(REALMS_GEN \"${CMAKE_BINARY_DIR}/install-generated\")
  set(REALMS_SYSCONFDIR \"${REALMS_SYSCONFDIR}\")
  set(REALMS_SYSTEMD_UNITDIR \"${REALMS_SYSTEMD_UNITDIR}\")
  set(REALMS_TMPFILESDIR \"${REALMS_TMPFILESDIR}\")
  include(\"${CMAKE_SOURCE_DIR}/packaging/install-generated.cmake\")
")
