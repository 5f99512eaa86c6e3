#!/usr/bin/env bash
# A local Debian base image for the Dockerfile, for machines that reach no image registry.
#
#   scripts/base-image.sh            # prints the tag, e.g. local/driftmend-base:bookworm-1a2b3c4d5e6f
#   docker build --network host --build-arg BASE="$(scripts/base-image.sh)" -t driftmend .
#
# 1. Reads the Debian mirrors apt already uses on this machine (/etc/apt/sources.list and
#    /etc/apt/sources.list.d/*.{list,sources}): the one serving $SUITE for debootstrap, and the
#    ones serving $SUITE-updates and $SUITE-security, if any, for the image's own apt sources.
#    No other mirror is ever contacted.
# 2. Derives the tag from its inputs (this script, suite, mirrors, packages, architecture).
#    When the engine already has that tag it prints it and does nothing else: the image is
#    built once per set of inputs. `docker rmi TAG` forces a rebuild (fresh security updates).
# 3. Otherwise (root only) installs debootstrap with apt when it is missing, bootstraps a
#    minimal $SUITE with $PACKAGES (what both stages of the Dockerfile need: python3 and its
#    venv module; no compiler), applies the updates and security suites, adds the machine's
#    own trust anchors (see EXTRA_CA_DIR), trims apt's caches and the docs (the copyright
#    files stay), and `docker import`s the tree under the tag.
#
# Progress goes to stderr; stdout holds only the tag. Exit status 3, with the reason, when
# the image cannot be made on this machine (not root, no debootstrap and no apt-get, no
# Debian mirror in apt's sources, no docker CLI); 1 when making it failed.
set -euo pipefail

SUITE="${DRIFTMEND_BASE_SUITE:-bookworm}"
REPOSITORY="${DRIFTMEND_BASE_REPOSITORY:-local/driftmend-base}"
# python3-venv: the builder stage makes a venv; ca-certificates: TLS to the Kubernetes API,
# Gemini and the package index; passwd: useradd for the image's non-root user.
PACKAGES="python3,python3-venv,ca-certificates,passwd"
# Certificates this machine trusts beyond Debian's (where Debian keeps local CAs: a site's own,
# or a TLS-intercepting proxy's). They go into the image too, so pip in the builder reaches
# the package index through whatever this machine reaches it through.
EXTRA_CA_DIR="${DRIFTMEND_BASE_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"

say() { echo "base-image: $*" >&2; }
die() { say "$*"; exit 1; }
cannot() { say "$*"; exit 3; }

# The engine's own CLI when both are installed: /usr/local/bin may hold a newer client only.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker
command -v "$DOCKER" >/dev/null || cannot "no docker CLI"

# Every enabled `deb` source as "URI SUITE" lines, from both apt formats (one-line and deb822).
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENT...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 4 { print $2, $3 }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
        types = ""; enabled = ""; nu = 0; ns = 0
      }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      { key = tolower($1); sub(/:$/, "", key); $1 = "" }
      key == "types" { types = $0 " " }
      key == "enabled" { enabled = tolower($2) }
      key == "uris" { nu = split($0, u, " ") }
      key == "suites" { ns = split($0, s, " ") }
      END { flush() }
    ' "$f"
  done
}

mirror_for() {  # the first URI apt uses for suite $1 (empty when none)
  apt_sources | awk -v want="$1" '$2 == want { print $1; exit }'
}

MIRROR="$(mirror_for "$SUITE")"
[ -n "$MIRROR" ] || cannot "apt's sources name no mirror for $SUITE: nothing to bootstrap from"
UPDATES_MIRROR="$(mirror_for "$SUITE-updates")"
SECURITY_MIRROR="$(mirror_for "$SUITE-security")"
ARCH="$(dpkg --print-architecture 2>/dev/null || uname -m)"
EXTRA_CAS=()
if [ -d "$EXTRA_CA_DIR" ]; then
  mapfile -t EXTRA_CAS < <(find "$EXTRA_CA_DIR" -type f -name '*.crt' | sort)
fi

inputs="$(
  cat "${BASH_SOURCE[0]}"
  printf '%s\n' "$SUITE" "$MIRROR" "$UPDATES_MIRROR" "$SECURITY_MIRROR" "$PACKAGES" "$ARCH"
  [ ${#EXTRA_CAS[@]} -eq 0 ] || cat "${EXTRA_CAS[@]}"
)"
TAG="$REPOSITORY:$SUITE-$(printf '%s' "$inputs" | sha256sum | cut -c1-12)"

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  say "$TAG exists"
  echo "$TAG"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || cannot "$TAG is missing and only root can debootstrap it"
if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || cannot "debootstrap is missing and there is no apt-get to install it"
  say "installing debootstrap from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
    >/dev/null || die "apt-get install debootstrap failed"
fi

# Under /var/tmp: debootstrap needs a directory it may create device nodes and run programs in.
work="$(mktemp -d /var/tmp/driftmend-base.XXXXXX)"
root="$work/root"
cleanup() {
  # A failed debootstrap can leave /proc or /sys mounted in the tree: unmount before removing,
  # and never let rm cross into another filesystem.
  awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

say "debootstrap $SUITE ($ARCH) from $MIRROR with $PACKAGES"
debootstrap --variant=minbase --arch="$ARCH" --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

{
  echo "deb $MIRROR $SUITE main"
  [ -z "$UPDATES_MIRROR" ] || echo "deb $UPDATES_MIRROR $SUITE-updates main"
  [ -z "$SECURITY_MIRROR" ] || echo "deb $SECURITY_MIRROR $SUITE-security main"
} >"$root/etc/apt/sources.list"

if [ ${#EXTRA_CAS[@]} -gt 0 ]; then
  say "adding this machine's CA certificates: ${EXTRA_CAS[*]}"
  cp "${EXTRA_CAS[@]}" "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"
fi

if [ -n "$UPDATES_MIRROR$SECURITY_MIRROR" ]; then
  say "applying $SUITE-updates and $SUITE-security"
  mount -t proc proc "$root/proc"
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get upgrade -y -qq --no-install-recommends' \
    >"$work/upgrade.log" 2>&1 || { tail -n 30 "$work/upgrade.log" >&2; die "apt-get upgrade failed"; }
  umount "$root/proc"
fi

# What an image needs no copy of: apt's indexes and downloads, logs, docs and man pages.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/tmp/* "$root"/root/.cache
find "$root/usr/share/doc" -type f ! -name copyright -delete
find "$root/usr/share/doc" -type d -empty -delete

say "docker import $TAG"
tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
  | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    --change "LABEL dev.driftmend.base.suite=$SUITE dev.driftmend.base.mirror=$MIRROR dev.driftmend.base.packages=$PACKAGES" \
    --message "debootstrap $SUITE from $MIRROR with $PACKAGES (scripts/base-image.sh)" \
    - "$TAG" >/dev/null || die "docker import failed"
echo "$TAG"
