#!/bin/bash
# Build a reproducible busybox root filesystem tarball from the host's static busybox.
#
#   scripts/make-busybox-image.sh OUT.tar [BUSYBOX]
#
# BUSYBOX defaults to /bin/busybox (Debian package busybox-static). The tarball holds
# bin/busybox, one relative symlink per applet at the path `busybox --list-full` names,
# /etc/passwd, /etc/group and the usual empty directories; every entry is owned by 0:0,
# has mtime 0 and the entries are sorted, so the same busybox always gives the same bytes.
# Import it with:  docker import -c 'CMD ["sh"]' OUT.tar busybox:latest
set -euo pipefail

out=${1:?usage: $0 OUT.tar [BUSYBOX]}
busybox=${2:-/bin/busybox}

if ! file_out=$("$busybox" --list-full 2>/dev/null) || [ -z "$file_out" ]; then
    echo "error: $busybox does not look like busybox (install busybox-static)" >&2
    exit 1
fi
if command -v ldd >/dev/null && ldd "$busybox" 2>/dev/null | grep -q '=>'; then
    echo "error: $busybox is dynamically linked; install busybox-static" >&2
    exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
umask 022
chmod 0755 "$root"

for d in bin sbin usr usr/bin usr/sbin etc dev proc sys root home var var/spool var/spool/mail var/www tmp; do
    mkdir -p "$root/$d"
done
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"

while read -r applet; do
    [ -n "$applet" ] || continue
    [ "$applet" = bin/busybox ] && continue
    dir=$(dirname "$applet")
    mkdir -p "$root/$dir"
    # relative link to /bin/busybox from the applet's directory
    if [ "$dir" = bin ]; then
        target=busybox
    elif [ "$dir" = . ]; then
        target=bin/busybox
    else
        target="$(echo "$dir" | sed -e 's|[^/][^/]*|..|g')/bin/busybox"
    fi
    ln -sfn "$target" "$root/$applet"
done <<<"$file_out"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"

mkdir -p "$(dirname "$out")"
tar --create --file="$out.tmp" --directory="$root" \
    --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@0 \
    --no-acls --no-xattrs --no-selinux \
    .
mv -f "$out.tmp" "$out"
