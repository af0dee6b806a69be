#!/usr/bin/env bash
# make localstack-up: LocalStack (Pro image: ACM PCA is not in the community edition) on HOST:PORT,
# when Docker and LOCALSTACK_AUTH_TOKEN are both there; otherwise one line saying why not.
set -euo pipefail
host="${1:-127.0.0.1}"; port="${2:-4566}"
image="${LOCALSTACK_IMAGE:-localstack/localstack-pro:latest}"
command -v docker >/dev/null 2>&1 || { echo "error: localstack-up needs Docker: no docker command on this machine (use make aws-up for the built-in stand-in)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "error: localstack-up needs a running Docker daemon: docker info failed (use make aws-up for the built-in stand-in)" >&2; exit 1; }
[ -n "${LOCALSTACK_AUTH_TOKEN:-}" ] || { echo "error: localstack-up needs LOCALSTACK_AUTH_TOKEN (LocalStack requires an account since 2026; ACM PCA is a paid feature)" >&2; exit 1; }
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  echo "error: $host:$port is already in use (make aws-down stops the built-in stand-in)" >&2; exit 1
fi
docker run -d --rm --name hsm-demo-localstack -p "$host:$port:4566" -e LOCALSTACK_AUTH_TOKEN "$image" >/dev/null
for _ in $(seq 1 120); do
  if curl -fsS "http://$host:$port/_localstack/health" >/dev/null 2>&1; then
    echo "localstack-up: LocalStack answers on http://$host:$port (container hsm-demo-localstack; stop: docker stop hsm-demo-localstack)"
    exit 0
  fi
  sleep 1
done
echo "error: LocalStack did not answer on http://$host:$port within 120 s (docker logs hsm-demo-localstack)" >&2
exit 1
