#!/usr/bin/env bash
# Makes an OCI bundle with a static busybox rootfs.
#
#   scripts/make-bundle.sh DIR [--tsrun-spec]
#       DIR/rootfs      a copy of the cached busybox rootfs template
#       DIR/config.json `runc spec`'s default (with --tsrun-spec: `bin/tsrun
#                       spec`'s, falling back to runc's when bin/tsrun cannot
#                       run yet), then process.args=["sh"], terminal=false.
#       An existing DIR/rootfs and DIR/config.json are replaced; nothing else
#       in DIR is touched.
#
#   scripts/make-bundle.sh --template
#       Only makes sure the rootfs template exists and prints its path (the
#       spec harness uses this, then copies the template itself).
#
# The template is built once per busybox binary under $TSRUN_TEST_CACHE
# (default /var/cache/tsrun-test, or ~/.cache/tsrun-test when that is not
# writable), in a directory named after a key of the busybox binary and this
# layout's version, so a changed busybox or layout gets a new template and
# concurrent builders never see a half-built one (build aside, then rename).
# DIR/rootfs shares the template's symlinks by hard link (see below): chown or
# chmod a copy (`cp -a`), not DIR/rootfs's symlinks, if a test needs to.
#
# Rootfs layout: /bin/busybox plus one symlink per applet in /bin; /sbin,
# /usr/bin and /usr/sbin are symlinks to /bin; /etc/{passwd,group,hostname,
# hosts}; empty proc sys dev tmp root run var/tmp home.
set -euo pipefail
umask 022

LAYOUT_VERSION=1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "make-bundle.sh: $*" >&2; exit 1; }
usage() { echo "usage: $0 DIR [--tsrun-spec] | $0 --template" >&2; exit 2; }

dir= tsrun_spec=0 template_only=0
for a in "$@"; do
  case $a in
    --tsrun-spec) tsrun_spec=1 ;;
    --template) template_only=1 ;;
    -h|--help) usage ;;
    -*) echo "make-bundle.sh: unknown option $a" >&2; usage ;;
    *) [ -z "$dir" ] || usage; dir=$a ;;
  esac
done
[ "$template_only" = 1 ] || [ -n "$dir" ] || usage

cache_dir() {
  if [ -n "${TSRUN_TEST_CACHE:-}" ]; then echo "$TSRUN_TEST_CACHE"; return; fi
  if mkdir -p /var/cache/tsrun-test 2>/dev/null && [ -w /var/cache/tsrun-test ]; then
    echo /var/cache/tsrun-test
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/tsrun-test"
  fi
}

find_busybox() {
  local b
  for b in "${BUSYBOX:-}" /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return; }
  done
  die "no busybox found (install Debian's busybox-static: bash scripts/setup.sh)"
}

template_ok() {
  [ "$(stat -c '%u:%g:%a' "$1/bin/busybox" "$1/etc" "$1/tmp" 2>/dev/null | tr '\n' ' ')" = "0:0:755 0:0:755 0:0:1777 " ] &&
    [ -L "$1/bin/sh" ]
}

# Prints the template's path, building it first when it is missing.
ensure_template() {
  local cache bb key tmpl tmp applet
  cache=$(cache_dir)
  mkdir -p "$cache"
  bb=$(find_busybox)
  key=$(stat -Lc 'v'"$LAYOUT_VERSION"'-%s-%Y' "$bb")
  tmpl=$cache/rootfs-$key
  if template_ok "$tmpl"; then echo "$tmpl"; return; fi
  # A tampered template (a test that chowned or chmodded through a hard
  # link) is rebuilt; bundles still linking to it keep their copy.
  [ ! -e "$tmpl" ] || mv -T "$tmpl" "$tmpl.stale.$$" 2>/dev/null || true

  # The rootfs has no libc: the binary must be static (ldd fails on those).
  ! ldd "$bb" >/dev/null 2>&1 ||
    die "$bb is linked dynamically; the rootfs needs a static busybox (Debian's busybox-static)"
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp"/{bin,etc,proc,sys,dev,tmp,root,run,home,usr,var/tmp}
  chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
  chmod 700 "$tmp/root"
  cp "$bb" "$tmp/bin/busybox"
  chmod 755 "$tmp/bin/busybox"
  (
    cd "$tmp/bin"
    for applet in $("$bb" --list); do
      case $applet in busybox|*/*) continue ;; esac
      ln -s busybox "$applet"
    done
  )
  [ -L "$tmp/bin/sh" ] || die "$bb --list has no sh applet"
  ln -s bin "$tmp/sbin"
  ln -s ../bin "$tmp/usr/bin"
  ln -s ../bin "$tmp/usr/sbin"
  cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$tmp/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
  echo busybox >"$tmp/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
  chmod 644 "$tmp"/etc/*
  chmod 755 "$tmp"
  # Another builder may have won the race: keep theirs (rename fails on a
  # non-empty target), drop ours.
  mv -T "$tmp" "$tmpl" 2>/dev/null || rm -rf "$tmp"
  trap - EXIT
  template_ok "$tmpl" || die "template $tmpl is incomplete"
  # Templates of older keys are no longer used by anyone.
  for old in "$cache"/rootfs-*; do
    [ "$old" = "$tmpl" ] || rm -rf "$old"  # also the *.stale.* ones
  done
  echo "$tmpl"
}

tmpl=$(ensure_template)
if [ "$template_only" = 1 ]; then echo "$tmpl"; exit 0; fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ "$dir" != / ] || die "refusing to use / as the bundle directory"
rm -rf "$dir/rootfs" "$dir/config.json"
# Hard links for the ~270 applet symlinks (creating that many symlinks costs
# ~50 ms here; linking them ~5 ms; a symlink is never changed in place), real
# copies of the regular files (bin/busybox, etc/*) so that a container writing
# to them in place cannot change the template. Falls back to a full copy when
# the cache is on another filesystem.
if cp -al "$tmpl" "$dir/rootfs" 2>/dev/null; then
  cp -p --remove-destination "$tmpl/bin/busybox" "$dir/rootfs/bin/busybox"
  cp -p --remove-destination "$tmpl"/etc/* "$dir/rootfs/etc/"
else
  rm -rf "$dir/rootfs"
  cp -a "$tmpl" "$dir/rootfs"
fi

spec_by_tsrun() {
  [ -x "$REPO/bin/tsrun" ] && "$REPO/bin/tsrun" spec --bundle "$dir" 2>/dev/null && [ -s "$dir/config.json" ]
}
spec_by_runc() {
  command -v runc >/dev/null 2>&1 && runc spec --bundle "$dir" && [ -s "$dir/config.json" ]
}
if [ "$tsrun_spec" = 1 ]; then
  if ! spec_by_tsrun; then
    rm -f "$dir/config.json"
    echo "make-bundle.sh: bin/tsrun spec did not work; using runc spec" >&2
    spec_by_runc || die "neither bin/tsrun spec nor runc spec worked"
  fi
else
  spec_by_runc || { rm -f "$dir/config.json"; spec_by_tsrun; } || die "neither runc spec nor bin/tsrun spec worked"
fi

jq '.process.args = ["sh"] | .process.terminal = false' "$dir/config.json" >"$dir/config.json.tmp"
mv "$dir/config.json.tmp" "$dir/config.json"
