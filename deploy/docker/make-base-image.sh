#!/usr/bin/env bash
# Makes a stand-in for the `node:20-slim` base image on a machine that cannot pull from a container
# registry: a minimal Debian bookworm (debootstrap --variant=minbase) plus this machine's Node 20
# (node, npm, corepack) and its CA bundle, with the `node` user (uid 1000) the official image has.
#
#   sudo deploy/docker/make-base-image.sh [image-name]      # default localhost/roster-node-base:20
#   export ROSTER_BASE_IMAGE=localhost/roster-node-base:20
#
# Needs root, debootstrap and podman. Outbound TLS intercepted by a proxy? The machine's CA bundle is
# copied in and NODE_EXTRA_CA_CERTS points at it, so npm/pnpm in the build stage trust that proxy.
set -euo pipefail

image="${1:-localhost/roster-node-base:20}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
node_bin="$(command -v node)"
node_prefix="$(dirname "$(dirname "$(readlink -f "$node_bin")")")"
node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = 20 ] || { echo "this machine's node is $("$node_bin" -v), not 20" >&2; exit 1; }
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

root="$(mktemp -d /var/tmp/roster-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase bookworm "$root" "$mirror"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*

# Node as the official image lays it out: /usr/local/bin/node and the npm/corepack packages.
install -D -m 0755 "$(readlink -f "$node_bin")" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
for pkg in npm corepack; do
  if [ -d "$node_prefix/lib/node_modules/$pkg" ]; then
    cp -a "$node_prefix/lib/node_modules/$pkg" "$root/usr/local/lib/node_modules/"
  fi
done
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
[ -d "$root/usr/local/lib/node_modules/corepack" ] && ln -sf ../lib/node_modules/corepack/dist/corepack.js "$root/usr/local/bin/corepack"

install -D -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' \
  - "$image"
podman run --rm --runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 "$image" node -e 'console.log("base image ready: node " + process.version)'
