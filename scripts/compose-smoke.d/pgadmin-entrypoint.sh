#!/bin/bash
# What the official dpage/pgadmin4 entrypoint does with the variables docker-compose.yml sets:
# PGADMIN_CONFIG_* written into config_distro.py at the first start, the configuration database
# created with PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD (both required) at the first start,
# /pgadmin4/servers.json imported then (anonymously in desktop mode) and again at every start with
# --replace when PGADMIN_REPLACE_SERVERS_ON_STARTUP=True, gunicorn on PGADMIN_LISTEN_ADDRESS and
# PGADMIN_LISTEN_PORT (default [::]:80). Postfix is not part of the stand-in.
set -eu
py=/venv/bin/python3
export CONFIG_DISTRO_FILE_PATH=/pgadmin4/config_distro.py
distro=$CONFIG_DISTRO_FILE_PATH
if [ ! -s "$distro" ]; then
  {
    echo "CA_FILE = '/etc/ssl/certs/ca-certificates.crt'"
    echo "LOG_FILE = '/dev/null'"
    echo "DEFAULT_BINARY_PATHS = {'pg': '/usr/lib/postgresql/15/bin'}"
    for var in $(env | grep '^PGADMIN_CONFIG_' | cut -d= -f1); do
      val=${!var}
      case "${val,,}" in true) val=True ;; false) val=False ;; esac
      echo "${var#PGADMIN_CONFIG_} = $val"
    done
  } > "$distro"
fi
servers=${PGADMIN_SERVER_JSON_FILE:-/pgadmin4/servers.json}
load_servers() {
  local extra=()
  [ "${PGADMIN_REPLACE_SERVERS_ON_STARTUP:-}" = True ] && extra=(--replace)
  [ -f "$servers" ] || return 0
  if [ "${PGADMIN_CONFIG_SERVER_MODE:-}" = False ]; then
    "$py" /pgadmin4/setup.py load-servers "$servers" "${extra[@]}"
  else
    "$py" /pgadmin4/setup.py load-servers "$servers" --user "$PGADMIN_DEFAULT_EMAIL" "${extra[@]}"
  fi
}
if [ ! -f /var/lib/pgadmin/pgadmin4.db ]; then
  if [ -z "${PGADMIN_DEFAULT_EMAIL:-}" ] || [ -z "${PGADMIN_DEFAULT_PASSWORD:-}" ]; then
    echo 'You need to define the PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD environment variables.'
    exit 1
  fi
  cd /pgadmin4
  export PGADMIN_SETUP_EMAIL="$PGADMIN_DEFAULT_EMAIL" PGADMIN_SETUP_PASSWORD="$PGADMIN_DEFAULT_PASSWORD"
  "$py" run_pgadmin.py
  load_servers
elif [ "${PGADMIN_REPLACE_SERVERS_ON_STARTUP:-}" = True ]; then
  load_servers
fi
cd /pgadmin4
exec /venv/bin/gunicorn --timeout 86400 \
  --bind "${PGADMIN_LISTEN_ADDRESS:-[::]}:${PGADMIN_LISTEN_PORT:-80}" -w 1 --threads 25 \
  --access-logfile - run_pgadmin:app
