#!/bin/sh
# redis-server's default (no config file) is protected mode on: only loopback clients without a
# password. The official redis image builds it off; so does this stand-in, for any command line.
set -e
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server "$@" --protected-mode no
fi
exec "$@"
