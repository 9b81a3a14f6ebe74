#!/usr/bin/env bash
# Writes the files the local overlay's secretGenerator reads, into deploy/k8s/overlays/local/secrets/
# (git-ignored, mode 0600): a PostgreSQL password and the services' DATABASE_URL, an Ed25519 JWT
# signing key, and the first administrator. Existing files are kept; delete the folder to start afresh.
#
#   deploy/k8s/overlays/local/make-secrets.sh && kubectl apply -k deploy/k8s/overlays/local
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"
umask 077

random() { node -e 'process.stdout.write(require("node:crypto").randomBytes(24).toString("base64url"))'; }

[ -s "$dir/postgres-password" ] || random > "$dir/postgres-password"
printf 'postgres://roster:%s@postgres.roster-infra.svc.cluster.local:5432/roster' "$(cat "$dir/postgres-password")" > "$dir/database-url"
[ -s "$dir/jwt-ed25519.pem" ] || node -e '
  const { generateKeyPairSync } = require("node:crypto")
  const { privateKey } = generateKeyPairSync("ed25519")
  process.stdout.write(privateKey.export({ type: "pkcs8", format: "pem" }))' > "$dir/jwt-ed25519.pem"
[ -s "$dir/admin-username" ] || printf admin > "$dir/admin-username"
[ -s "$dir/admin-password" ] || random > "$dir/admin-password"
echo "secrets in $dir (admin: $(cat "$dir/admin-username"), password in $dir/admin-password)"
