#!/bin/bash
# Build the local image's root filesystem: unpack the cached Debian base (made
# with debootstrap on first use), then run provision.sh inside it with chroot.
# Run by the Packer template's local build; every input comes from the
# environment it sets.
set -euo pipefail

rootfs=${ROOTFS:?}
base_tarball=${BASE_TARBALL:?}
payload=${PAYLOAD:?}
cache_dir=${CACHE_DIR:?}

make_base() {
    # The base depends only on suite, mirror and package list; its file name
    # carries a digest of the three, so a changed input makes a new base.
    local work="${base_tarball}.partial.d"
    rm -rf "$work"
    echo "rootfs - debootstrap ${SUITE} from ${MIRROR} (first bake with these inputs)"
    debootstrap --variant=minbase --include="${BASE_PACKAGES}" \
        "${SUITE}" "$work" "${MIRROR}" >"${base_tarball}.debootstrap.log"
    tar -C "$work" --numeric-owner -cf "${base_tarball}.partial" .
    mv "${base_tarball}.partial" "$base_tarball"
    rm -rf "$work"
}

unmount_all() {
    for point in var/cache/calcfleet-ca.crt var/cache/calcfleet-pip var/cache/calcfleet-apt dev/pts dev sys proc; do
        if mountpoint -q "$rootfs/$point"; then
            umount --lazy "$rootfs/$point"
        fi
    done
}

# Bakes side by side share the caches: one at a time makes the base and runs
# apt and pip against them (apt refuses a locked archive directory).
mkdir -p "$cache_dir"
exec 9>"$cache_dir/lock"
if ! flock --nonblock 9; then
    echo "rootfs - waiting for another bake to finish with the caches"
    flock 9
fi

[[ -f "$base_tarball" ]] || make_base
echo "rootfs - unpacking $(basename "$base_tarball")"
mkdir -p "$rootfs"
tar -C "$rootfs" --numeric-owner -xpf "$base_tarball"

trap unmount_all EXIT
mkdir -p "$cache_dir/apt/partial" "$cache_dir/pip" \
    "$rootfs/var/cache/calcfleet-apt" "$rootfs/var/cache/calcfleet-pip"
mount -t proc proc "$rootfs/proc"
mount --bind /sys "$rootfs/sys"
mount --bind /dev "$rootfs/dev"
mount --bind /dev/pts "$rootfs/dev/pts"
mount --bind "$cache_dir/apt" "$rootfs/var/cache/calcfleet-apt"
mount --bind "$cache_dir/pip" "$rootfs/var/cache/calcfleet-pip"
# pip inside trusts what the host trusts (a proxy's CA, say) for this build
# only; the image keeps Debian's own CA store.
touch "$rootfs/var/cache/calcfleet-ca.crt"
mount --bind -o ro /etc/ssl/certs/ca-certificates.crt \
    "$rootfs/var/cache/calcfleet-ca.crt"
cp -a "$payload" "$rootfs/tmp/calcfleet-payload"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"

# A clean environment: the host's variables name paths that do not exist
# inside (and requests prefers REQUESTS_CA_BUNDLE over pip's own --cert).
ca=/var/cache/calcfleet-ca.crt
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TARGET=local \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
    PIP_CERT=$ca REQUESTS_CA_BUNDLE=$ca SSL_CERT_FILE=$ca \
    CALCFLEET_APT_ARCHIVES=/var/cache/calcfleet-apt \
    PIP_CACHE_DIR=/var/cache/calcfleet-pip \
    /bin/bash /tmp/calcfleet-payload/provision.sh

unmount_all
trap - EXIT
flock --unlock 9
rmdir "$rootfs/var/cache/calcfleet-apt" "$rootfs/var/cache/calcfleet-pip"
rm "$rootfs/var/cache/calcfleet-ca.crt"
rm -rf "$rootfs/tmp/calcfleet-payload"
echo "rootfs - ready at $rootfs"
