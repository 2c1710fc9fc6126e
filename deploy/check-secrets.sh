#!/bin/sh
# Refuse to start with an empty or placeholder secret, then run the container's own command.
#
#   check-secrets.sh VAR [VAR ...] -- COMMAND [ARG ...]
#
# For the third-party containers of the compose stack (postgres, grafana): the images accept any password, and
# .env.example's "change-me-..." values would otherwise become the real ones. tagwatch's own processes check their
# database URLs themselves (TAGWATCH_ENVIRONMENT=production). Same placeholders as tagwatch.settings.
set -eu
failed=0
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  name=$1
  shift
  eval "value=\${$name-}"
  lower=$(printf %s "$value" | tr '[:upper:]' '[:lower:]')
  case "$lower" in
    "") reason="is empty" ;;
    change-me* | changeme* | changethis | changeit | password | secret | postgres | admin | tagwatch)
      reason="is a placeholder" ;;
    *) reason="" ;;
  esac
  if [ -n "$reason" ]; then
    echo "refusing to start: $name $reason: set a real secret for $name in .env (see .env.example)" >&2
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 78  # EX_CONFIG
[ "$#" -gt 0 ] && shift
[ "$#" -gt 0 ] || { echo "check-secrets.sh: no command after --" >&2; exit 64; }
exec "$@"
